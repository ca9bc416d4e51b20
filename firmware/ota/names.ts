/** The manifest of `outpost-1.2.3-linux-arm64.tar.gz` is `outpost-1.2.3-linux-arm64.tar.gz.manifest.json`. */
export const MANIFEST_SUFFIX = '.manifest.json';
