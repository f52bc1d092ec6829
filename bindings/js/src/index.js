// kvrun for Node: the unmodified kvrun vault client component (`kvrun_guest.wasm`, transpiled
// by jco) behind a JS host that enforces, at the HTTP boundary, what the Rust host does.
//
// The component runs in a worker thread with only the `wasi:*` imports of `./wasi/`; every
// request it makes goes to this thread's boundary (`./boundary.js`): allow-list (only the
// vault's origin), no `Authorization` from the component, the credential added by the host
// for the vault only (challenge first for Azure tokens), TLS with the given CA, timeouts and
// a response cap. There is no training sandbox in Node: use the Rust host or the Python
// package for untrusted code.

import { Worker, MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { DEFAULT_SPIN_MICROSECONDS, MAX_SPIN_MICROSECONDS, SPIN_BUDGET, SpinGate, TO_HOST, TO_WORKER, newCounters, spinWhile } from './handoff.js';
import { Boundary } from './boundary.js';
import { Credential } from './credential.js';
import { AllowList, parseOrigin, PolicyError } from './policy.js';
import { ComponentError, ConfigError, KvrunError, Unavailable, fromContract } from './errors.js';

export * from './errors.js';
export { AllowList, PolicyError, parseOrigin } from './policy.js';
export { isKeyVaultHost, parseChallenge, challengeAllowed, KEY_VAULT_DOMAINS } from './credential.js';

const date = (seconds) => (seconds === undefined ? undefined : new Date(Number(seconds) * 1000));
const seconds = (d) => (d === undefined ? undefined : BigInt(Math.floor(new Date(d).getTime() / 1000)));
const tagList = (tags) => (tags === undefined ? undefined : Object.entries(tags).map(([k, v]) => [String(k), String(v)]));

function properties(p) {
  return {
    name: p.name,
    version: p.version,
    id: p.id,
    contentType: p.contentType,
    enabled: p.enabled,
    notBefore: date(p.notBefore),
    expires: date(p.expires),
    created: date(p.created),
    updated: date(p.updated),
    tags: Object.fromEntries(p.tags),
  };
}

function deleted(d) {
  return {
    name: d.properties.name,
    properties: properties(d.properties),
    recoveryId: d.recoveryId,
    deletedDate: date(d.deletedDate),
    scheduledPurgeDate: date(d.scheduledPurgeDate),
  };
}

/** A Key Vault (or the local kvrun vault), reached through the kvrun component. */
export class Keyvault {
  /**
   * @param {object} options
   * @param {string} options.vaultUrl `https://NAME.vault.azure.net` or the local vault's URL.
   * @param {string} [options.token] a static token, sent to `vaultUrl` only.
   * @param {(scope: string, options: { tenantId?: string }) => Promise<string | { token: string, expiresOnTimestamp?: number }>} [options.getToken]
   *   Azure-style credentials: called only after the vault's challenge names a Key Vault domain.
   * @param {string | Buffer} [options.caCert] a PEM CA to trust besides the public roots.
   * @param {string} [options.apiVersion] the Key Vault `api-version` (default 7.5).
   * @param {boolean} [options.unsafeTokenToAnyHost] answer any host's challenge (test servers only).
   * @param {{ maxAttempts?: number, baseDelayMs?: number, maxDelayMs?: number, deadlineMs?: number }} [options.retry]
   *   the component's retry budget.
   * @param {number} [options.callTimeoutMs] how long one operation may take, retries included
   *   (default 90 s, as the Rust host); past it the component's worker is stopped and the call
   *   fails with `Unavailable` (kind `timeout`).
   * @param {number} [options.spinMicroseconds] how long the main thread and the component's
   *   worker busy-wait for each other's next message before they sleep, while the machine has
   *   a core to spare (default 200; 0 never spins, at about 0.2 ms more per call on an idle
   *   virtual machine; see `./handoff.js`).
   * @param {string | URL} [options.componentModule] another transpiled implementation of the
   *   `vault-client` world (a test double); it runs in the same worker under the same boundary.
   */
  constructor({ vaultUrl, token, getToken, caCert, apiVersion, unsafeTokenToAnyHost = false, retry = {}, callTimeoutMs = 90_000, spinMicroseconds = DEFAULT_SPIN_MICROSECONDS, componentModule } = {}) {
    if (!vaultUrl) throw new ConfigError('vaultUrl is required', { kind: 'config' });
    let origin;
    let allow;
    try {
      origin = parseOrigin(vaultUrl);
      allow = new AllowList([vaultUrl]);
    } catch (e) {
      throw new ConfigError(e instanceof PolicyError ? e.message : String(e), { kind: 'config' });
    }
    const url = `${origin.scheme}://${vaultUrl.split('://')[1].replace(/\/$/, '')}`;
    this.vaultUrl = url;
    this.#boundary = new Boundary({
      vaultOrigin: origin,
      allow,
      credential: new Credential({ token, getToken, unsafeTokenToAnyHost }),
      caCert,
    });
    this.#callTimeoutMs = callTimeoutMs;
    if (typeof spinMicroseconds !== 'number' || !(spinMicroseconds >= 0 && spinMicroseconds <= MAX_SPIN_MICROSECONDS)) {
      throw new ConfigError(`spinMicroseconds must be a number from 0 to ${MAX_SPIN_MICROSECONDS}, not ${String(spinMicroseconds)}`, { kind: 'config' });
    }
    this.#spinMicroseconds = spinMicroseconds;
    this.#module = componentModule === undefined ? undefined : String(componentModule);
    this.#env = [['KVRUN_VAULT_URL', url]];
    if (apiVersion) this.#env.push(['KVRUN_API_VERSION', String(apiVersion)]);
    for (const [key, name] of [
      ['maxAttempts', 'KVRUN_RETRY_MAX_ATTEMPTS'],
      ['baseDelayMs', 'KVRUN_RETRY_BASE_DELAY_MS'],
      ['maxDelayMs', 'KVRUN_RETRY_MAX_DELAY_MS'],
      ['deadlineMs', 'KVRUN_RETRY_DEADLINE_MS'],
    ]) {
      if (retry[key] !== undefined) this.#env.push([name, String(retry[key])]);
    }
  }

  #boundary;
  #env;
  #module;
  #callTimeoutMs;
  #spinMicroseconds;
  #spinGate = new SpinGate();
  #worker;
  #port;
  #counters;
  #ready;
  #requestsInFlight = 0;
  #calls = new Map();
  #nextCall = 1;
  #closed = false;

  /** Requests the boundary sent and refused so far: `{ sent, denied }`. */
  get networkStats() {
    return { ...this.#boundary.stats };
  }

  #start() {
    const { port1, port2 } = new MessageChannel();
    const counters = newCounters();
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { port: port2, counters, env: this.#env, module: this.#module },
      transferList: [port2],
      env: {},
      stdout: true,
      stderr: true,
    });
    port1.on('message', (m) => this.#fromWorker(m));
    this.#ready = new Promise((resolve, reject) => {
      worker.once('message', (m) => (m.ready ? resolve() : reject(new ComponentError('the vault client component did not start', { kind: 'component' }))));
      worker.once('error', (e) => reject(new ComponentError(`the vault client component did not start: ${e.message}`, { kind: 'component' })));
    });
    worker.on('exit', () => {
      port1.close();
      if (this.#worker === worker) this.#worker = undefined;
      if (this.#port === port1) this.#port = undefined;
      for (const [id, call] of this.#calls) {
        if (call.worker === worker) {
          this.#calls.delete(id);
          call.reject(new ComponentError('the vault client component stopped', { kind: 'component' }));
        }
      }
    });
    this.#worker = worker;
    this.#port = port1;
    this.#counters = counters;
    this.#setSpinBudget();
  }

  /** Puts the spin budget both threads use now into the shared counters. */
  #setSpinBudget() {
    Atomics.store(this.#counters, SPIN_BUDGET, this.#spinGate.open ? this.#spinMicroseconds : 0);
  }

  /** A message from the worker: a request for the boundary, or a call's reply. */
  #fromWorker(m) {
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'request') {
      this.#serve(m);
      return;
    }
    const call = this.#calls.get(m.id);
    if (!call) return;
    this.#calls.delete(m.id);
    if (m.fatal) call.reject(new ComponentError(m.fatal, { kind: 'component' }));
    else if (m.error) call.reject(fromContract(m.error, this.#boundary.stats.denied > call.deniedBefore, this.#boundary.stats.tokenRefused > call.tokenRefusedBefore));
    else call.resolve(m.value);
    this.#idle();
  }

  /** Sends one of the component's requests through the boundary and hands the answer back. */
  async #serve(request) {
    const port = this.#port;
    // Only this thread of the package runs now (the worker waits for the answer): the moment
    // to see whether the machine has a core to spare for spinning.
    this.#spinGate.sample();
    this.#setSpinBudget();
    this.#requestsInFlight++;
    const answer = await this.#boundary.handle(request);
    this.#requestsInFlight--;
    if (this.#port !== port) return;
    // The worker's next message comes within microseconds only when this answer was the
    // last one it waited for.
    this.#toWorker({ type: 'answer', id: request.id, ...answer }, this.#requestsInFlight === 0, answer.body ? [answer.body.buffer] : []);
  }

  /** Hands the worker a message (moving the buffers in `transfer`); with `nextComesSoon`,
   * watches for its next message for the spin budget and takes what has come at once (see
   * `./handoff.js`). */
  #toWorker(message, nextComesSoon, transfer = []) {
    const counters = this.#counters;
    const seen = Atomics.load(counters, TO_HOST);
    this.#port.postMessage(message, transfer);
    Atomics.add(counters, TO_WORKER, 1);
    Atomics.notify(counters, TO_WORKER);
    if (!nextComesSoon || !spinWhile(counters, TO_HOST, seen, Atomics.load(counters, SPIN_BUDGET))) return;
    for (let got = receiveMessageOnPort(this.#port); got; got = this.#port && receiveMessageOnPort(this.#port)) {
      this.#fromWorker(got.message);
    }
  }

  #idle() {
    if (this.#calls.size === 0 && this.#worker) {
      this.#worker.unref();
      this.#port.unref();
    }
  }

  async #call(op, ...args) {
    if (this.#closed) throw new ConfigError('this Keyvault is closed', { kind: 'config' });
    if (!this.#worker) this.#start();
    const worker = this.#worker;
    worker.ref();
    this.#port.ref();
    await this.#ready;
    if (this.#worker !== worker) throw new ComponentError('the vault client component stopped', { kind: 'component' });
    const id = this.#nextCall++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The component is blocked inside the call: stop its worker; the next call starts a
        // fresh one.
        this.#calls.delete(id);
        reject(new Unavailable(`${op} did not finish within ${this.#callTimeoutMs / 1000} s`, { kind: 'timeout' }));
        if (this.#worker === worker) this.#worker = undefined;
        worker.terminate();
      }, this.#callTimeoutMs);
      const done = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      this.#calls.set(id, { resolve: done(resolve), reject: done(reject), worker, deniedBefore: this.#boundary.stats.denied, tokenRefusedBefore: this.#boundary.stats.tokenRefused });
      // The worker takes calls one at a time: a call's first request comes within
      // microseconds only when no other call or request is ahead of it.
      this.#toWorker({ type: 'call', id, op, args }, this.#calls.size === 1 && this.#requestsInFlight === 0);
    });
  }

  /** Stops the component's worker and closes pooled connections. */
  async close() {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#boundary.close();
    if (worker) await worker.terminate();
  }

  /** Sets a secret; an existing name gets a new version. */
  async setSecret(name, value, { contentType, tags } = {}) {
    return properties(await this.#call('setSecret', name, value, { contentType, tags: tagList(tags) ?? [] }));
  }

  /** Sets many secrets concurrently: `{ name: value }` in, one `{ name, properties }` or
   * `{ name, error }` per entry out, in order. */
  async setSecrets(secrets) {
    const inputs = Object.entries(secrets).map(([name, value]) => ({ name, value: String(value), options: { contentType: undefined, tags: [] } }));
    const outcomes = await this.#call('setSecrets', inputs);
    return outcomes.map((o, i) =>
      o.tag === 'ok' ? { name: inputs[i].name, properties: properties(o.val) } : { name: inputs[i].name, error: fromContract(o.val, false) },
    );
  }

  /** The latest version of a secret (or `version`): `{ name, value, properties }`. */
  async getSecret(name, { version } = {}) {
    const secret = await this.#call('getSecret', name, version);
    return { name: secret.properties.name, value: secret.value, properties: properties(secret.properties) };
  }

  /** Many values in one call: `{ name: value | null }`. */
  async getSecrets(names) {
    const values = await this.#call('getSecrets', [...names]);
    return Object.fromEntries(names.map((n, i) => [n, values[i] ?? null]));
  }

  /** Every secret's properties. */
  async listSecrets() {
    return (await this.#call('listSecrets')).map(properties);
  }

  /** Every version's properties. */
  async listSecretVersions(name) {
    return (await this.#call('listSecretVersions', name)).map(properties);
  }

  /** Deletes every version of a secret. */
  async deleteSecret(name) {
    return deleted(await this.#call('deleteSecret', name));
  }

  /** Changes a version's properties (the latest without `version`). */
  async updateSecretProperties(name, { version, enabled, contentType, tags, notBefore, expires } = {}) {
    return properties(
      await this.#call('updateSecretProperties', name, version, {
        enabled,
        contentType,
        tags: tagList(tags),
        notBefore: seconds(notBefore),
        expires: seconds(expires),
      }),
    );
  }

  /** A deleted secret that can still be recovered. */
  async getDeletedSecret(name) {
    return deleted(await this.#call('getDeletedSecret', name));
  }

  /** Every deleted secret. */
  async listDeletedSecrets() {
    return (await this.#call('listDeletedSecrets')).map(deleted);
  }

  /** Brings a deleted secret back. */
  async recoverDeletedSecret(name) {
    return properties(await this.#call('recoverDeletedSecret', name));
  }

  /** Removes a deleted secret for good. */
  async purgeDeletedSecret(name) {
    await this.#call('purgeDeletedSecret', name);
  }

  /** An opaque backup of every version. */
  async backupSecret(name) {
    return this.#call('backupSecret', name);
  }

  /** Restores a backup. */
  async restoreSecret(backup) {
    return properties(await this.#call('restoreSecret', backup));
  }

  toString() {
    return `Keyvault(${this.vaultUrl}, ${this.#boundary.credential})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return this.toString();
  }
}

export { KvrunError };
