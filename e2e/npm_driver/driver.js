// driver.js is one application using the npm `nacos` client (its naming
// client, nacos-naming), driven by distrod's e2e tests over stdin/stdout with
// the protocol of ../nacos_driver: each stdin line is a JSON request
// {"id","op",...}; each reply is one JSON line {"id","err","ok"} on stdout;
// subscribe callbacks are written as {"event":"subscribe","service","hosts"}.
// The process exits when stdin is closed.
//
// Usage: node driver.js -server HOST:PORT[,HOST:PORT...] -dir DIR
'use strict';

const readline = require('readline');
const { NacosNamingClient } = require('nacos');

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const server = arg('-server');
if (!server) {
  console.error('driver.js: -server is required');
  process.exit(2);
}

// The client logs through this; only warnings and errors reach stderr (the test shows them on failure).
const logger = {
  debug() {},
  info() {},
  warn(...a) { console.error('WARN', ...a); },
  error(...a) { console.error('ERROR', ...a); },
};

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function hosts(list) {
  return (list || []).map(h => ({
    ip: h.ip, port: h.port, healthy: h.healthy, enabled: h.enabled,
    weight: h.weight, instanceId: h.instanceId, metadata: h.metadata || {},
  }));
}

async function handle(client, req) {
  const inst = { ip: req.ip, port: req.port, weight: req.weight || 1, metadata: req.metadata || {} };
  switch (req.op) {
    case 'register':
      await client.registerInstance(req.service, inst, req.group || undefined);
      return { ok: true };
    case 'deregister':
      await client.deregisterInstance(req.service, inst, req.group || undefined);
      return { ok: true };
    case 'subscribe':
      client.subscribe({ serviceName: req.service, groupName: req.group || undefined }, list => {
        write({ event: 'subscribe', service: req.service, hosts: hosts(list) });
      });
      return { ok: true };
    default:
      throw new Error(`unknown op "${req.op}"`);
  }
}

async function main() {
  const client = new NacosNamingClient({ logger, serverList: server, namespace: 'public' });
  await client.ready();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async line => {
    let req;
    try {
      req = JSON.parse(line);
    } catch (err) {
      write({ err: `bad request ${JSON.stringify(line)}: ${err.message}` });
      return;
    }
    try {
      write(Object.assign({ id: req.id }, await handle(client, req)));
    } catch (err) {
      write({ id: req.id, err: String(err && err.message || err) });
    }
  });
  rl.on('close', () => process.exit(0));
}

main().catch(err => {
  console.error('driver.js:', err);
  process.exit(1);
});
