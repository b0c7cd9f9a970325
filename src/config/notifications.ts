import type { z } from 'zod';
import type { SecretRef, ServiceNotifications as FileNotifications } from './schema.js';
import type { Secret } from './secret.js';

type File = z.infer<typeof FileNotifications>;
type FileSlack = NonNullable<File['slack']>;
type FileGitHub = NonNullable<File['github']>;

/** A service's notifications (schema.ts `ServiceNotifications`) with their secrets resolved. */
export interface ServiceNotifications {
  readonly slack?: (Omit<FileSlack, 'webhookUrl'> & { readonly webhookUrl?: Secret | undefined }) | undefined;
  readonly github?: (Omit<FileGitHub, 'token'> & { readonly token: Secret }) | undefined;
}

/** Resolves the secrets of `services.NAME.notifications` with the loader's `secret` (which names the key when it fails). */
export function resolveNotifications(
  file: File | undefined,
  key: string,
  secret: (ref: SecretRef, key: string) => Secret,
): ServiceNotifications | undefined {
  if (file === undefined) return undefined;
  const { slack, github } = file;
  return {
    slack: slack && { ...slack, webhookUrl: slack.webhookUrl === undefined ? undefined : secret(slack.webhookUrl, `${key}.slack.webhookUrl`) },
    github: github && { ...github, token: secret(github.token, `${key}.github.token`) },
  };
}
