import { LANE_NAME_BYTES_MAX } from './checkpoint.js';

/** The lane everything bound for the cloud is written to first; the uplink drains it in stored order. */
export const UPSTREAM_LANE = 'upstream';

/**
 * A lane name: it names the lane's checkpoint slot (at most LANE_NAME_BYTES_MAX bytes) and travels in
 * dead-letter properties, so it is a plain word of letters, digits and `. _ -` that does not start with a dot.
 */
export const LANE_NAME_PATTERN = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,${LANE_NAME_BYTES_MAX - 1}}$`);
