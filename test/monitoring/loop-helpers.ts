import { sampleManifests } from '../node/real-pods.js';

/**
 * The sample service's manifests for the loop: 2 stable replicas whose pods tell Prometheus their metrics port by the
 * annotation the shipped scrape configuration reads, and `env` (LATENCY_MS, ERROR_RATIO) setting how it behaves.
 */
export function loopManifests(spec: { name: string; image: string; env: Record<string, string> }): Record<string, string> {
  return sampleManifests({ name: spec.name, image: spec.image, replicas: 2, env: spec.env, podAnnotations: { 'prometheus.io/port': '8080' } });
}
