'use strict';
// The active side of the PouchDB baseline (bench/bench_pouchdb.py).
// usage: node client.js DOCS.jsonl DIR URL
// Loads the documents of DOCS.jsonl ([id, body] a line) into a local PouchDB (LevelDB) in
// DIR (not timed), pushes them to the remote database URL (one-shot replicate.to), then
// pulls them into a second, empty local database (one-shot replicate.from). Prints an
// event line {"event": ...} when each replication starts and ends (the parent samples the
// server's CPU time then), and at the end one JSON line: seconds and CPU seconds (this
// process) of each step, documents written and the document counts at the end.
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const PouchDB = require('pouchdb');

const BATCH = 1000;

function seconds(since) {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function cpuSeconds(since) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

function event(name) {
  process.stdout.write(JSON.stringify({ event: name }) + '\n');
}

async function load(db, file) {
  const lines = readline.createInterface({ input: fs.createReadStream(file) });
  let batch = [];
  let count = 0;
  for await (const line of lines) {
    if (!line) continue;
    const [id, body] = JSON.parse(line);
    batch.push({ _id: id, ...body });
    if (batch.length === BATCH) {
      await db.bulkDocs(batch);
      count += batch.length;
      batch = [];
    }
  }
  if (batch.length) {
    await db.bulkDocs(batch);
    count += batch.length;
  }
  return count;
}

async function main() {
  const [file, dir, url] = process.argv.slice(2);
  if (!url) {
    console.error('usage: node client.js DOCS.jsonl DIR URL');
    process.exit(2);
  }
  const source = new PouchDB(path.join(dir, 'source'));
  const target = new PouchDB(path.join(dir, 'target'));
  const remote = new PouchDB(url);
  const out = {};

  let t = process.hrtime.bigint();
  out.loaded = await load(source, file);
  out.load_s = seconds(t);

  event('push-start');
  let cpu = process.cpuUsage();
  t = process.hrtime.bigint();
  const push = await source.replicate.to(remote);
  out.push_s = seconds(t);
  out.push_cpu_s = cpuSeconds(cpu);
  event('push-end');
  out.pushed = push.docs_written;
  out.remote_count = (await remote.info()).doc_count;

  event('pull-start');
  cpu = process.cpuUsage();
  t = process.hrtime.bigint();
  const pull = await target.replicate.from(remote);
  out.pull_s = seconds(t);
  out.pull_cpu_s = cpuSeconds(cpu);
  event('pull-end');
  out.pulled = pull.docs_written;
  out.target_count = (await target.info()).doc_count;

  await Promise.all([source.close(), target.close(), remote.close()]);
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }) + '\n');
  process.exit(1);
});
