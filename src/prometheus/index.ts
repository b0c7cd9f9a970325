import type { Logger } from 'pino';
import type { AnalysisConfig, ServiceConfig } from '../config/load.js';
import type { CanaryAnalysis } from '../core/ports.js';
import type { CanaryAnalysisResult } from '../core/types.js';
import { InputError } from '../errors.js';
import { comparisonOf, PrometheusAnalysis } from './analysis.js';
import { PrometheusClient } from './client.js';

/** Where no Prometheus is configured: a promotion that asks for an analysis is told what to configure. */
class NoAnalysis implements CanaryAnalysis {
  analyse(service: ServiceConfig): Promise<CanaryAnalysisResult> {
    return Promise.reject(
      new InputError(`a promotion of ${service.name} with analysis needs analysis.prometheus.url in the deployer's configuration`, { field: 'analysis' }),
    );
  }
}

/** The canary analysis the configuration asks for: Prometheus' HTTP API, or none. */
export function createAnalysis(config: AnalysisConfig, logger: Logger): CanaryAnalysis {
  if (config.prometheus === undefined) return new NoAnalysis();
  const client = new PrometheusClient({ connection: config.prometheus, logger });
  return new PrometheusAnalysis({ params: comparisonOf(config), query: (expr) => client.query(expr) });
}
