/**
 * Counts added and removed lines of a unified diff (as `svn diff` prints it). Hunk headers give each hunk's line
 * counts, so content lines that look like headers ("+++ x", "--- y") are still counted right; anything outside a
 * hunk (file headers, svn property sections, "Cannot display: file marked as a binary type") is skipped.
 */
export function countUnifiedDiff(text: string): { insertions: number; deletions: number } {
  let insertions = 0;
  let deletions = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const line of text.split('\n')) {
    if (oldLeft > 0 || newLeft > 0) {
      const first = line.charAt(0);
      if (first === '+' && newLeft > 0) {
        insertions++;
        newLeft--;
        continue;
      }
      if (first === '-' && oldLeft > 0) {
        deletions++;
        oldLeft--;
        continue;
      }
      if (first === ' ' || (line === '' && oldLeft > 0 && newLeft > 0)) {
        oldLeft--;
        newLeft--;
        continue;
      }
      if (first === '\\') continue;
      // A line that fits no hunk count: the hunk was shorter than announced.
      oldLeft = 0;
      newLeft = 0;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
    if (hunk !== null) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
    }
  }
  return { insertions, deletions };
}
