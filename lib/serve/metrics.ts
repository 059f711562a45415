/**
 * The server's counters in Prometheus' text exposition format (version 0.0.4): requests by endpoint
 * and status, tokens, latency sums, the engine's batch and the adapter pool.
 * @internal
 * @module
 */
import type { AdapterPoolStats } from './adapter-pool';
import type { EngineStats } from './engine';

export class ServerMetrics {
  private readonly requests = new Map<string, number>();
  private latency = { count: 0, sum: 0, firstTokenSum: 0 };

  /** One answered HTTP request. */
  count(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** One finished completion's latency (seconds). */
  observe(totalMs: number, firstTokenMs: number): void {
    this.latency.count++;
    this.latency.sum += totalMs / 1000;
    this.latency.firstTokenSum += firstTokenMs / 1000;
  }

  render(engine: EngineStats, pool: AdapterPoolStats): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels ? `{${labels}}` : ''} ${v}`);
    };
    metric('peft_http_requests_total', 'counter', 'HTTP requests answered, by endpoint and status.', [...this.requests]);
    metric('peft_requests_running', 'gauge', 'Completions in the running batch.', [['', engine.running]]);
    metric('peft_requests_waiting', 'gauge', 'Completions waiting for a place in the batch.', [['', engine.waiting]]);
    metric('peft_completions_total', 'counter', 'Completions ended, by outcome.', [
      ['outcome="completed"', engine.completed],
      ['outcome="cancelled"', engine.cancelled],
      ['outcome="failed"', engine.failed],
    ]);
    metric('peft_prompt_tokens_total', 'counter', 'Prompt tokens accepted.', [['', engine.promptTokens]]);
    metric('peft_generation_tokens_total', 'counter', 'Tokens generated.', [['', engine.generatedTokens]]);
    metric('peft_steps_total', 'counter', 'Batched forward passes.', [['', engine.steps]]);
    metric('peft_step_rows_total', 'counter', 'Tokens fed over all forward passes.', [['', engine.stepRows]]);
    metric('peft_kv_slots_open', 'gauge', 'KV cache slots open.', [['', engine.openSlots]]);
    metric('peft_request_duration_seconds', 'summary', 'Time from submission to the last token (sum and count only).', []);
    lines.push(`peft_request_duration_seconds_sum ${this.latency.sum}`, `peft_request_duration_seconds_count ${this.latency.count}`);
    metric('peft_time_to_first_token_seconds', 'summary', 'Time from submission to the first new token.', []);
    lines.push(`peft_time_to_first_token_seconds_sum ${this.latency.firstTokenSum}`, `peft_time_to_first_token_seconds_count ${this.latency.count}`);
    metric('peft_adapters_loaded', 'gauge', 'Adapters in the pool.', [['', pool.loaded]]);
    metric('peft_adapter_pool_bytes', 'gauge', 'Bytes of adapter tensors in the pool.', [['', pool.bytes]]);
    metric('peft_adapter_pool_budget_bytes', 'gauge', 'The pool budget.', [['', pool.budgetBytes]]);
    metric('peft_adapter_pool_lookups_total', 'counter', 'Adapter lookups, by result.', [
      ['result="hit"', pool.hits],
      ['result="miss"', pool.misses],
    ]);
    metric('peft_adapter_pool_evictions_total', 'counter', 'Adapters evicted to keep within the budget.', [['', pool.evictions]]);
    metric('process_resident_memory_bytes', 'gauge', 'Resident memory of the server process.', [['', process.memoryUsage.rss()]]);
    return lines.join('\n') + '\n';
  }
}
