// Types of the kvrun package for Node.

export interface SecretProperties {
  name: string;
  /** Undefined for list entries, which describe the secret rather than one version. */
  version?: string;
  id: string;
  contentType?: string;
  enabled: boolean;
  notBefore?: Date;
  expires?: Date;
  created?: Date;
  updated?: Date;
  tags: Record<string, string>;
}

export interface Secret {
  name: string;
  value: string;
  properties: SecretProperties;
}

export interface DeletedSecret {
  name: string;
  properties: SecretProperties;
  recoveryId?: string;
  deletedDate?: Date;
  scheduledPurgeDate?: Date;
}

export type SetOutcome = { name: string; properties: SecretProperties; error?: undefined } | { name: string; error: KvrunError; properties?: undefined };

export interface KeyvaultOptions {
  /** `https://NAME.vault.azure.net`, or the local vault's URL. */
  vaultUrl: string;
  /** A static token, sent to `vaultUrl` only. */
  token?: string;
  /** Azure-style credentials, called only after the vault's challenge names a Key Vault domain. */
  getToken?: (scope: string, options: { tenantId?: string }) => Promise<string | { token: string; expiresOnTimestamp?: number }>;
  /** A PEM CA to trust besides the public roots (the local vault's `ca.pem`). */
  caCert?: string | Buffer;
  /** The Key Vault `api-version` (default 7.5). */
  apiVersion?: string;
  /** Answer any host's challenge with an Azure token (test servers only). */
  unsafeTokenToAnyHost?: boolean;
  /** The component's retry budget. */
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number; deadlineMs?: number };
  /** How long one operation may take (default 90 000 ms). */
  callTimeoutMs?: number;
  /**
   * How long the main thread and the component's worker busy-wait for each other's next
   * message before sleeping, in microseconds (default 200, at most 10 000; 0 never spins).
   * Spinning saves a thread wake-up on each hand-over (about 0.2 ms a call on a virtual
   * machine) for at most that much CPU per hand-over.
   */
  spinMicroseconds?: number;
  /**
   * How many worker threads, each with its own instance of the component, may run calls that
   * overlap (default 4, from 1 to 64). One starts at the first call; another only when a call
   * finds every one busy (about 12 MB and 60 ms each).
   */
  workers?: number;
  /** Another transpiled implementation of the `vault-client` world (a test double). */
  componentModule?: string | URL;
}

export class Keyvault {
  constructor(options: KeyvaultOptions);
  readonly vaultUrl: string;
  /** Requests the boundary sent and refused so far. */
  readonly networkStats: { sent: number; denied: number };
  close(): Promise<void>;
  setSecret(name: string, value: string, options?: { contentType?: string; tags?: Record<string, string> }): Promise<SecretProperties>;
  setSecrets(secrets: Record<string, string>): Promise<SetOutcome[]>;
  getSecret(name: string, options?: { version?: string }): Promise<Secret>;
  getSecrets(names: string[]): Promise<Record<string, string | null>>;
  listSecrets(): Promise<SecretProperties[]>;
  listSecretVersions(name: string): Promise<SecretProperties[]>;
  deleteSecret(name: string): Promise<DeletedSecret>;
  updateSecretProperties(
    name: string,
    update?: { version?: string; enabled?: boolean; contentType?: string; tags?: Record<string, string>; notBefore?: Date; expires?: Date },
  ): Promise<SecretProperties>;
  getDeletedSecret(name: string): Promise<DeletedSecret>;
  listDeletedSecrets(): Promise<DeletedSecret[]>;
  recoverDeletedSecret(name: string): Promise<SecretProperties>;
  purgeDeletedSecret(name: string): Promise<void>;
  backupSecret(name: string): Promise<string>;
  restoreSecret(backup: string): Promise<SecretProperties>;
}

export class KvrunError extends Error {
  constructor(message: string, options?: { kind?: string; status?: number });
  /** The stable kind, as in `kvrun --output json`. */
  readonly kind: string;
  /** The vault's HTTP status, for `ServiceError`. */
  readonly status?: number;
}
export class NotFound extends KvrunError {}
export class Denied extends KvrunError {}
export class PolicyDenied extends Denied {}
export class Unauthenticated extends KvrunError {}
export class Conflict extends KvrunError {}
export class InvalidArgument extends KvrunError {}
export class InvalidName extends InvalidArgument {}
export class Unavailable extends KvrunError {}
export class ServiceError extends KvrunError {}
export class ComponentError extends KvrunError {}
export class ConfigError extends KvrunError {}

export class PolicyError extends Error {}
export interface Origin {
  scheme: 'https' | 'http';
  host: string;
  port: number;
  wildcard: boolean;
}
export function parseOrigin(text: string, options?: { entry?: boolean }): Origin;
export class AllowList {
  constructor(entries?: Iterable<string>);
  allows(origin: { scheme: string; host: string; port: number }): boolean;
}
export const KEY_VAULT_DOMAINS: string[];
export function isKeyVaultHost(host: string): boolean;
export function parseChallenge(header: string): { scope: string; tenantId?: string; resourceHost: string } | null;
export function challengeAllowed(challenge: { resourceHost: string }, host: string): boolean;
