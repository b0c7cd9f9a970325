/**
 * Removes secrets from text that may reach a log or an error message: the given values (and their base64 and URL
 * encodings, as they appear in headers and URLs), `Authorization:` header values, and passwords in URLs.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  const variants = new Set<string>();
  for (const s of secrets) {
    if (s.length < 3) continue;
    variants.add(s);
    variants.add(encodeURIComponent(s));
    variants.add(Buffer.from(s).toString('base64'));
  }
  // Longest first, so a secret inside a longer one does not leave the rest of the longer one behind.
  for (const v of [...variants].sort((a, b) => b.length - a.length)) out = out.split(v).join('[redacted]');
  return out
    .replace(/(authorization:\s*)(basic|bearer|token)\s+\S+/gi, '$1$2 [redacted]')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]*@/gi, '$1[redacted]@');
}
