// Latency histograms, shared by the load generators and the runners:
// HdrHistogram (hdr-histogram-js), in microseconds from 1 µs to 100 s with
// three significant digits. Load generators send theirs encoded; runners
// merge them exactly.
import * as hdr from 'hdr-histogram-js'

export type LatencyHistogram = hdr.Histogram

export function newHistogram (): LatencyHistogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: 3 })
}

/** Records a latency given in milliseconds. */
export function recordMs (histogram: LatencyHistogram, ms: number): void {
  histogram.recordValue(Math.min(100_000_000, Math.max(1, Math.round(ms * 1000))))
}

export function encode (histogram: LatencyHistogram): string {
  return hdr.encodeIntoCompressedBase64(histogram)
}

/** One histogram holding every encoded one. */
export function merge (encoded: readonly string[]): LatencyHistogram {
  const merged = newHistogram()
  for (const one of encoded) merged.add(hdr.decodeFromCompressedBase64(one))
  return merged
}

/** A percentile (0-100) in milliseconds, or null for an empty histogram. */
export function percentileMs (histogram: LatencyHistogram, percentile: number): number | null {
  if (histogram.totalCount === 0) return null
  return Math.round(histogram.getValueAtPercentile(percentile) / 10) / 100
}
