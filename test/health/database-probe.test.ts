import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { setImmediate as settled, setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { DatabaseProbe } from '../../src/health/database-probe.js';
import { onEachEngine } from '../helpers/harness.js';

/** A stand-in for `select 1` that counts its calls and answers as told. */
function fakeDatabase() {
  const state = { calls: 0, up: true, hung: false };
  const query = () => {
    state.calls++;
    if (state.hung) return new Promise<never>(() => {});
    return state.up ? Promise.resolve() : Promise.reject(new Error('connection refused'));
  };
  return { state, probe: new DatabaseProbe(query) };
}

/** Moves the mocked clock by `ms`, letting the checks the timers start settle in between. */
async function advance(ms: number, step = 50) {
  for (let passed = 0; passed < ms; passed += step) {
    mock.timers.tick(Math.min(step, ms - passed));
    await settled();
  }
}

describe('the database probe', () => {
  let stop: (() => void) | undefined;
  beforeEach(() => mock.timers.enable({ apis: ['Date', 'setTimeout', 'setInterval'], now: 1_000_000 }));
  afterEach(() => {
    stop?.();
    mock.timers.reset();
  });

  it('answers from a success at most 250 ms old, and concurrent callers share one check', async () => {
    const { state, probe } = fakeDatabase();
    stop = () => probe.stop();
    assert.deepEqual(await Promise.all([probe.answers(), probe.answers(), probe.answers()]), [
      true,
      true,
      true,
    ]);
    assert.equal(state.calls, 1, 'three callers at once, one select 1');
    probe.stop(); // no background checks: only the age of the answer counts
    mock.timers.tick(250);
    assert.equal(await probe.answers(), true);
    assert.equal(state.calls, 1, 'a 250 ms old success still answers');
    mock.timers.tick(1);
    assert.equal(await probe.answers(), true);
    assert.equal(state.calls, 2, 'an older one does not');
  });

  it('refreshes every 100 ms while asked, and stops a minute after the last ask', async () => {
    const { state, probe } = fakeDatabase();
    stop = () => probe.stop();
    await probe.answers();
    await advance(1000);
    assert.equal(state.calls, 11, 'the first check, then one each 100 ms');
    for (let second = 0; second < 10; second++) {
      assert.equal(await probe.answers(), true);
      await advance(1000);
    }
    assert.equal(state.calls, 111, 'probes meanwhile are answered from the refreshed answer');
    await advance(60_000);
    const afterAMinute = state.calls;
    await advance(10_000);
    assert.equal(state.calls, afterAMinute, 'idle for a minute: no more checks');
    assert.ok(afterAMinute >= 700 && afterAMinute <= 712, `${afterAMinute} checks`);
    await probe.answers();
    await advance(300);
    assert.ok(state.calls > afterAMinute + 2, 'asked again: refreshing again');
  });

  it('never reuses a failure, and checks nothing in the background while the database is down', async () => {
    const { state, probe } = fakeDatabase();
    stop = () => probe.stop();
    await probe.answers();
    state.up = false;
    await advance(100);
    assert.equal(state.calls, 2, 'the background check that finds it down');
    await advance(5000);
    assert.equal(state.calls, 2, 'down: no background checks');
    assert.equal(await probe.answers(), false);
    assert.equal(await probe.answers(), false);
    assert.equal(state.calls, 4, 'each probe checks again');
    state.up = true;
    assert.equal(await probe.answers(), true);
    await advance(500);
    assert.equal(state.calls, 10, 'back: refreshing again');
  });

  it('takes no answer within 2 s as none', async () => {
    const { state, probe } = fakeDatabase();
    stop = () => probe.stop();
    state.hung = true;
    let answer: boolean | undefined;
    void probe.answers().then((answered) => {
      answer = answered;
    });
    await advance(1950);
    assert.equal(answer, undefined);
    await advance(50);
    assert.equal(answer, false);
  });
});

onEachEngine('/health and /ready answer for the database', (h) => {
  // First, while this app has had no probe at all. PostgreSQL only: SQLite answers select 1 in the
  // process, where there is nothing to see from outside.
  if (h.engine === 'postgres')
    it('checks PostgreSQL in the background only while probes come', async (t) => {
      // Seen from a connection of the test's own: the app's pool would run these on its own connections.
      const observer = new pg.Client({ connectionString: h.databaseUrl });
      await observer.connect();
      t.after(() => observer.end());
      // How many of the app's connections ran select 1 after `since`.
      const checksSince = async (since: Date) => {
        const { rows } = await observer.query(
          `select pid from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and query = 'select 1' and state_change > $1`,
          [since],
        );
        return rows.length;
      };
      const clock = async (): Promise<Date> =>
        (await observer.query('select clock_timestamp() as now')).rows[0].now;
      const idle = await clock();
      await sleep(500);
      assert.equal(await checksSince(idle), 0, 'no probes: no select 1');
      assert.equal((await h.get('/health')).statusCode, 200);
      const asked = await clock();
      await sleep(500);
      assert.ok((await checksSince(asked)) > 0, 'after a probe, select 1 again in the background');
    });

  it('answers 200 from a fresh answer', async () => {
    const health = await h.get('/health');
    assert.equal(health.statusCode, 200);
    assert.deepEqual(health.json(), { status: 'ok', database: h.engine });
    const ready = await h.get('/ready');
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json().checks, { database: 'ok' });
  });
});
