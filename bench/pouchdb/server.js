'use strict';
// The passive side of the PouchDB baseline (bench/bench_pouchdb.py): express-pouchdb over
// HTTP on 127.0.0.1, any free port, databases stored with PouchDB's default Node adapter
// (LevelDB) under the directory given as the first argument.
// Prints {"port": N, "pid": P} on stdout; exits when stdin closes or on SIGTERM.
const path = require('path');
const express = require('express');
const expressPouchDB = require('express-pouchdb');
const PouchDB = require('pouchdb');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node server.js DIR');
  process.exit(2);
}
const ServerPouchDB = PouchDB.defaults({ prefix: dir + path.sep });
const app = express();
// minimumForPouchDB: the routes a PouchDB replicator uses, no config/log files, no Fauxton.
app.use('/', expressPouchDB(ServerPouchDB, { mode: 'minimumForPouchDB' }));
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port, pid: process.pid }) + '\n');
});
const quit = () => {
  server.close();
  process.exit(0);
};
process.stdin.on('end', quit);
process.stdin.resume();
process.on('SIGTERM', quit);
