/* writefile.h - replace a file whole or not at all (thothc fmt and gen). */
#ifndef THOTHC_WRITEFILE_H
#define THOTHC_WRITEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/*
 * Write LEN bytes of BUF to a temporary file beside PATH, fsync it, rename
 * it over PATH and fsync PATH's folder, so that a failed write (a full disk,
 * a file size limit) leaves PATH as it was and no temporary file behind, and
 * a crash leaves the old file or the whole new one, never an empty one.
 * KEEP: the mode and owner to give it (an existing file's), or NULL for a
 * new file's 0666 & ~umask.  Returns 0, or -1 with errno set and *WHAT (if
 * WHAT is not NULL) the step that failed ("write", "fsync", "rename", ...;
 * after "fsync of its folder" PATH has been replaced).  PATH must not be a
 * symlink (resolve it first).
 */
int thothc_write_whole(const char *path, const void *buf, size_t len, const struct stat *keep,
		       const char **what);

/*
 * BUF over the file PATH in place (its inode: owner, mode and hard links
 * stay), for where no file can replace it.  The room is reserved first
 * (posix_fallocate), so a full disk fails before a byte is written;
 * *TOUCHED says whether PATH may have changed when it fails anyway (a file
 * size limit, an I/O error).  Returns 0, or -1 with errno set.
 */
int thothc_write_in_place(const char *path, const void *buf, size_t len, bool *touched);

#endif
