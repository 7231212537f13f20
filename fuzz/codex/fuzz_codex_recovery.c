/*
 * fuzz_codex_recovery - codex's recovery of segment files and index files
 * (codex/record.c, codex/store.c) from arbitrary bytes.
 *
 * Input: u16 length of the index part, then segment bytes split at
 * 0xFF 0xFE 0xFD 0xFC markers into segments 1, 2, 3; the last `length`
 * bytes are segment 2's index file (used while segment 2 is not the last),
 * or, when they start with the catalog's magic "THCXCAT1", the retention
 * catalog (then the segments are numbered from the catalog's first kept
 * segment, when that is below 2^32).  The store
 * is opened on them (recovery), every record it then offers is read back
 * (each read re-checks its checksum: a record that fails is an error, never
 * returned), and one record is appended and read.  Also the parser alone on
 * the raw bytes.  Files live in a per-process directory on tmpfs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record.h"
#include "store.h"

static char dir[256];

static void put(const char *name, const uint8_t *p, size_t n)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void clear(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char path[700];
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

/* No residue in /dev/shm after the run (make test replays the seeds). */
static void remove_dir(void)
{
	clear();
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/fuzz-codex-%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
			 (int)getpid());
		mkdir(dir, 0700);
		atexit(remove_dir);
	}
	/* the parser alone */
	for (size_t off = 0; off < size;) {
		cx_rec_t r;
		size_t rs;
		if (cx_rec_parse(data + off, size - off, 0, &r, &rs) != CX_OK)
			break;
		if (rs < CX_REC_HDR || rs > size - off || r.len > CX_REC_MAX)
			abort();
		off += rs;
	}
	cx_seg_hdr_t h;
	cx_seg_hdr_parse(data, size, &h);
	if (size < 2)
		return 0;
	size_t idx_len = (size_t)(data[0] | data[1] << 8);
	data += 2;
	size -= 2;
	if (idx_len > size)
		idx_len = size;
	size_t seg_len = size - idx_len;
	clear();
	bool catalog = idx_len >= 24 && !memcmp(data + seg_len, "THCXCAT1", 8);
	uint64_t first_no = 1;
	if (catalog) {
		memcpy(&first_no, data + seg_len + 16, 8);
		if (first_no == 0 || first_no >= (1ull << 32))
			first_no = 1;
	}
	const uint8_t *p = data, *seg_end = data + seg_len;
	for (int k = 1; k <= 3; k++) {
		const uint8_t *mark = k < 3 ? memmem(p, (size_t)(seg_end - p), "\xff\xfe\xfd\xfc", 4) : NULL;
		char name[64];
		snprintf(name, sizeof name, "seg-%016llx.log", (unsigned long long)(first_no + (uint64_t)k - 1));
		put(name, p, (size_t)((mark ? mark : seg_end) - p));
		if (!mark)
			break;
		p = mark + 4;
	}
	if (idx_len)
		put(catalog ? "catalog" : "seg-0000000000000002.idx", data + seg_len, idx_len);
	cx_store_t *s;
	char why[300];
	cx_store_config_t cfg = { .dir = dir, .segment_bytes = 1 << 20 };
	if (cx_store_open(&cfg, &s, NULL, why, sizeof why))
		return 0;
	cx_stream_info_t info[64];
	size_t ns = cx_store_streams(s, info, 64);
	uint8_t *buf = malloc(cx_rec_size(CX_REC_MAX));
	for (size_t k = 0; k < ns && k < 64; k++) {
		uint64_t end = cx_store_next_seq(s, info[k].id);
		for (uint64_t seq = cx_store_first_seq(s, info[k].id); seq < end; seq++) {
			cx_loc_t loc;
			cx_rec_t rec;
			bool miss;
			if (cx_store_locate(s, info[k].id, seq, &loc))
				abort();        /* the index offered it */
			if (cx_store_read_at(&loc, buf, &rec, &miss) == 0 && (rec.seq != seq || rec.len != loc.len))
				abort();
		}
		cx_iov_t v = { "fuzz", 4 };
		uint64_t seq;
		if (cx_store_append(s, info[k].id, &v, 1, 0, UINT64_MAX / 2, &seq) == 0) {
			cx_loc_t loc;
			cx_rec_t rec;
			bool miss;
			if (cx_store_locate(s, info[k].id, seq, &loc) || cx_store_read_at(&loc, buf, &rec, &miss) ||
			    rec.len != 4 || memcmp(rec.payload, "fuzz", 4))
				abort();        /* what was just appended reads back */
		}
	}
	free(buf);
	cx_store_close(s);
	return 0;
}
