/*
 * hot.h - code layout for the round trip's path.
 *
 * On one CPU every round trip switches process twice, and each side then
 * runs its part of the path on a cold TLB and cold caches: what costs is
 * the number of distinct pages touched more than the instructions (docs/
 * SCHED.md, stop 34).  The functions that run on every round trip
 * were spread over ~12 code pages per side among their cold neighbours
 * (setup, handshake, errors).  THOTH_HOT* put a function in an input
 * section that the default GNU ld script gathers with the other hot ones
 * ahead of `.text`, so the path packs into a few pages.  A section, not
 * __attribute__((hot)).  Not quite the same code: GCC neither splits a
 * function with a section attribute into hot and .cold parts nor inlines
 * it partially, so the error paths of the marked functions (~380 bytes)
 * sit on the hot pages too; clang without a profile splits nothing.
 * Other linkers: gold orders the groups too; lld and binutils before
 * ~2.36 keep input order (the grouping is lost, nothing breaks but the
 * ctest hot_layout, tests/ipc/hot_layout_test.sh, which checks the built
 * libthoth.so).  Two empty page-aligned anchors in chan_shm.c
 * (.text.sorted.thoth_0 and thoth_1z) start the client and the shared
 * group on page boundaries; thothc's generated adapters and dispatchers
 * join groups 1 and 3 (THOTH__HOT_CLIENT / THOTH__HOT_SERVE, spelt out in
 * the generated code, off for libthoth's own interfaces).  Not
 * installed (cmake/ThothInstall.cmake): a build-time layout detail.  Mark only what runs on every round
 * trip (a cold function marked here spreads the hot ones again).
 */
#ifndef THOTH_HOT_H
#define THOTH_HOT_H

/*
 * Three groups in `.text.sorted.*` sections, which the default script
 * (binutils 2.40: `*(SORT(.text.sorted.*))`, right after .text.hot) lays
 * out by name whatever the order of the objects: a channel's client side,
 * then what both sides run, then the serving side and its loop.  A client
 * then touches the first two groups' pages and a service the last two.
 */
#define THOTH_HOT_CLIENT __attribute__((section(".text.sorted.thoth_1")))
#define THOTH_HOT        __attribute__((section(".text.sorted.thoth_2")))
#define THOTH_HOT_SERVE  __attribute__((section(".text.sorted.thoth_3")))

#endif
