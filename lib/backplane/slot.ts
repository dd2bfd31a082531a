/**
 * The Redis Cluster hash tag of a channel's keys and Pub/Sub channel, so
 * that one script can touch them all (one slot). Redis hashes what lies
 * between the first `{` and the next `}`; the fixed `c:` keeps that part
 * non-empty for a channel name that starts with `}` (an empty tag would
 * hash each whole key on its own and scatter them).
 */
export function slotTag (channel: string): string {
  return '{c:' + channel + '}'
}
