// Latency histogram shared by the load generator and the runners:
// logarithmic buckets from 10 µs, 5% wide, up to ~100 s.
export const BUCKET_BASE_MS = 0.01
export const BUCKET_GROWTH = 1.05
export const BUCKETS = 340
