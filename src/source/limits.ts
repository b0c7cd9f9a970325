/**
 * The most the source reads of a service's manifests directory at one version: a guard on the pod's memory, above
 * the manifests' own limit (src/core/util.ts `MAX_MANIFEST_BYTES`, checked by the parser), so that a directory a little
 * too large gets the parser's answer, which names the file, and only a huge one is refused before it is read.
 */
export const MAX_READ_BYTES = 64 * 1024 * 1024;
