import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

// The SQLite compiler (db/sqlite-compiler.ts) writes a whole-number LIMIT into the SQL: SQLite reads a
// bound LIMIT while planning, so binding another one re-prepares the statement. It reads a bound OFFSET
// only when the statement runs, so an offset stays bound: written into the SQL, each offset a client
// pages to would be a statement text of its own, prepared and cached (256 per connection) in place of
// the statements the server runs all the time.

onEachEngine('LIMIT and OFFSET (db/sqlite-compiler.ts)', (h: Harness) => {
  it('pages by offset through one statement text, the offset bound, the pages right', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) {
      const created = await h.post('/device/', { name: `page ${i}` });
      assert.equal(created.statusCode, 200, created.body);
      ids.push(created.json().id);
    }
    const page = (offset: number) =>
      h.db.selectFrom('devices').select('id').where('id', 'in', ids).orderBy('id').limit(3).offset(offset);
    const texts = new Set([0, 2, 5, 1_000_000].map((offset) => page(offset).compile().sql));
    assert.equal(texts.size, 1, [...texts].join('\n'));
    const [text] = texts;
    if (h.engine === 'sqlite') assert.match(text as string, /limit 3 offset \?$/);

    for (const offset of [0, 2, 5, 7, 1_000_000]) {
      const listed = await h.get(`/device/?limit=3&offset=${offset}`);
      assert.equal(listed.statusCode, 200, listed.body);
      const all = await h.get('/device/?limit=1000');
      const every = (all.json() as { id: number }[]).map((device) => device.id);
      assert.deepEqual(
        (listed.json() as { id: number }[]).map((device) => device.id),
        every.slice(offset, offset + 3),
      );
      assert.deepEqual(
        (await page(offset).execute()).map((row) => row.id),
        ids.slice(offset, offset + 3),
      );
    }
  });
});
