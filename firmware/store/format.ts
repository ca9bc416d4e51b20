/**
 * The on-disk format of the ring log (record header, segment summary, checkpoint slots) as one number. A
 * release that changes any of them bumps it; an OTA update to a release with another format is refused
 * (firmware/ota/manifest.ts), since rolling back would leave the old release a log it cannot read. A release
 * that migrates must keep writing the old format until its update is committed, then say so here.
 */
export const STORE_FORMAT = 1;
