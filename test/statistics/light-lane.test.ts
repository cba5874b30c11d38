import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const READINGS = 200_000;
const BATCH = 10_000;
const LONG_QUERY = 'attr=all&percentiles=5,25,75,95,99';
const METRICS_TOKEN = 'metrics-token-0123456789';
/** The small device's readings: x 1..5, so count 5, min 1, max 5, sum 15, median 3. */
const SMALL_X = [1, 2, 3, 4, 5];
/** How long the long query may take on a loaded machine. */
const GENEROUS_MS = 600_000;

onEachEngine(
  'a statistics query over few readings takes the light lane',
  (h: Harness) => {
    let big: number;
    let small: number;
    const long = () => h.get(`/analyze_statistics/?device_id=${big}&${LONG_QUERY}`);
    const short = () => h.get(`/analyze_statistics/?device_id=${small}&attr=x`);
    /** The value of one sample of /metrics, 0 when it is not there yet. */
    const sample = async (name: string, labels: string) => {
      const body = (
        await h.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
      ).body;
      const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    /**
     * The app again with `settings`; the rollup folder off, so that closing does not wait for it to
     * fold the long query's readings (it plays no part in the lanes). The deadline generous: the long
     * query takes about a second on a quiet machine and may take more than the default 30 s on a
     * loaded one, where its 503 would say nothing about the lanes.
     */
    const reopen = async (settings: Record<string, string> = {}) => {
      await h.close();
      await h.open({
        LOG_LEVEL: 'silent',
        ROLLUP_FOLD_INTERVAL_MS: '0',
        METRICS_TOKEN,
        STATISTICS_TIMEOUT_MS: String(GENEROUS_MS),
        ...settings,
      });
    };
    const ran = (lane: string) =>
      sample('statistics_heavy_query_run_seconds_count', `query="statistics",lane="${lane}",outcome="ok"`);

    before(async () => {
      big = await h.createDevice();
      small = await h.createDevice();
      for (let first = 0; first < READINGS; first += BATCH) {
        const batch = Array.from({ length: BATCH }, (_, i) => {
          const n = first + i;
          return { device_id: big, x: n, y: n % 101, z: -n };
        });
        assert.equal((await h.post('/data/', batch)).statusCode, 200);
      }
      const readings = SMALL_X.map((x) => ({ device_id: small, x, y: 0, z: 0 }));
      assert.equal((await h.post('/data/', readings)).statusCode, 200);
    });

    it('answers a small query while the heavy lane is full, and refuses a second long one', async () => {
      await reopen({ STATISTICS_CONCURRENCY: '1', STATISTICS_QUEUE: '0' });
      // Two long queries and a small one at once: the long ones are weighed side by side and reach the
      // heavy lane's one slot moments apart, so that one runs and the other finds it taken (a long one
      // runs for hundreds of milliseconds at least). Waiting for the first to be seen running before asking the second, the
      // first could end in between (it did on PostgreSQL). The small one takes the light lane meanwhile.
      let longDone = false;
      const whenDone = (response: Awaited<ReturnType<typeof long>>) => {
        if (response.statusCode === 200) longDone = true;
        return response;
      };
      const longOnes = Promise.all([long().then(whenDone), long().then(whenDone)]);
      const answered = await short();
      const smallAnsweredFirst = !longDone;
      assert.equal(answered.statusCode, 200, answered.body);
      assert.equal(answered.json().count, SMALL_X.length);
      const answers = await longOnes;
      const longAnswer = answers.find((response) => response.statusCode === 200);
      const refused = answers.find((response) => response.statusCode === 503);
      assert.ok(longAnswer && refused, answers.map((response) => response.body).join('\n'));
      assert.equal(refused.headers['retry-after'], '1');
      assert.equal(longAnswer.json().x.count, READINGS);
      assert.ok(smallAnsweredFirst, 'the small query waited for the long one');
      assert.equal(await ran('light'), 1);
      assert.equal(await ran('heavy'), 1);
    });

    it('answers the same values on either lane', async () => {
      await reopen();
      const light = await short();
      assert.equal(light.statusCode, 200, light.body);
      assert.equal(await ran('light'), 1);
      const expected = { count: 5, min: 1, max: 5, sum: 15, median: 3 };
      for (const [key, value] of Object.entries(expected)) assert.equal(light.json()[key], value, key);
      // Over the limit by one reading: the heavy lane, the same answer.
      await reopen({ STATISTICS_LIGHT_READINGS: String(SMALL_X.length - 1) });
      const heavy = await short();
      assert.equal(heavy.statusCode, 200, heavy.body);
      assert.deepEqual(heavy.json(), light.json());
      assert.equal(await ran('heavy'), 1);
      assert.equal(await ran('light'), 0);
      // At the limit exactly: light again.
      await reopen({ STATISTICS_LIGHT_READINGS: String(SMALL_X.length) });
      assert.deepEqual((await short()).json(), light.json());
      assert.equal(await ran('light'), 1);
      // The long query's values, from the readings as written (x = 0 .. READINGS - 1).
      const longAnswer = (await long()).json();
      assert.equal(longAnswer.x.count, READINGS);
      assert.equal(longAnswer.x.min, 0);
      assert.equal(longAnswer.x.max, READINGS - 1);
      assert.equal(longAnswer.x.sum, (READINGS * (READINGS - 1)) / 2);
      assert.equal(await ran('heavy'), 1);
    });

    it('STATISTICS_LIGHT_READINGS=0 sends every query to the heavy lane', async () => {
      await reopen({ STATISTICS_LIGHT_READINGS: '0' });
      assert.equal((await short()).json().count, SMALL_X.length);
      // A selection with no readings at all is heavy too.
      const empty = await h.get(
        `/analyze_statistics/?device_id=${small}&start_date=2001-01-01&end_date=2001-01-02`,
      );
      assert.equal(empty.statusCode, 200, empty.body);
      assert.equal(empty.json().count, 0);
      assert.equal(await ran('heavy'), 2);
      assert.equal(await ran('light'), 0);
    });
  },
  { LOG_LEVEL: 'silent', ROLLUP_FOLD_INTERVAL_MS: '0' },
);
