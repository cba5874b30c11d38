import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import type { Harness } from './harness.js';

/** The shared Mosquitto of this machine (`.ci/run` starts it when it is not running). */
export const SHARED_BROKER = 'mqtt://127.0.0.1:1883';

/** Whether something listens on `port` of 127.0.0.1. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Why the MQTT suites cannot run here, or false when the shared broker answers. */
export async function brokerSkipReason(): Promise<string | false> {
  return (await listening(1883))
    ? false
    : 'no MQTT broker on 127.0.0.1:1883: start Mosquitto (mosquitto -d -c /etc/mosquitto/mosquitto.conf)';
}

/** A topic prefix and client id no other run (parallel, or earlier) uses. */
export function uniqueMqtt(): { prefix: string; clientId: string } {
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  return { prefix: `statistics-test/${tag}`, clientId: `statistics-test-${tag}` };
}

/** A device's MQTT 5 client; QoS 1 publishes resolve on the broker's PUBACK. */
export function publisher(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return connectAsync(url, { protocolVersion: 5, reconnectPeriod: 200, connectTimeout: 5000, ...options });
}

/** Polls `check` every 50 ms until it answers true; throws with `what` after `timeoutMs`. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Resolves once the app's subscriber is connected and subscribed (as `/ready` shows it). */
export function subscribed(harness: Harness): Promise<void> {
  return waitUntil('the MQTT subscription', async () => {
    const ready = await harness.get('/ready');
    return ready.json().checks.mqtt === 'ok';
  });
}

/** The value of one Prometheus sample of the app, e.g. `statistics_mqtt_refused_total{kind="json"}`. */
export async function sample(harness: Harness, name: string, labels: Record<string, string> = {}) {
  const metric = (await harness.app.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const found = metric?.values.find((value) =>
    Object.entries(labels).every(([key, wanted]) => String(value.labels[key]) === wanted),
  );
  return found?.value ?? 0;
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A Mosquitto of the test's own on a free port, persisting its sessions in `dir`, so that a restart
 * keeps the messages queued for an offline subscriber (never restart the shared one). `extra` adds
 * configuration lines (a password file, an ACL).
 */
export class PrivateBroker {
  #process: ChildProcess | undefined;
  #log = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly extra: string[],
  ) {}

  static async start(dir: string, extra: string[] = []): Promise<PrivateBroker> {
    const broker = new PrivateBroker(dir, await freePort(), extra);
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      [
        `listener ${broker.port} 127.0.0.1`,
        'persistence true',
        `persistence_location ${dir}/`,
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        // Mosquitto's default (1,000) drops what an offline session gets beyond it.
        'max_queued_messages 100000',
        ...(extra.length > 0 ? extra : ['allow_anonymous true']),
        '',
      ].join('\n'),
    );
    await broker.start();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get log(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    const child = spawn('mosquitto', ['-c', join(this.dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#process = child;
    process.once('exit', () => child.kill('SIGKILL'));
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#log += chunk.toString();
    });
    await waitUntil(`mosquitto on port ${this.port}`, async () => {
      if (child.exitCode !== null) throw new Error(`mosquitto exited: ${this.#log}`);
      return listening(this.port);
    });
  }

  /** Reads its password file and ACL again (SIGHUP), as an operator does after adding a device. */
  async reload(): Promise<void> {
    this.#process?.kill('SIGHUP');
    await sleep(200);
  }

  /** Stops it (SIGTERM: it saves its sessions and queued messages first) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    await exited;
  }
}
