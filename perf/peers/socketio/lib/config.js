'use strict';

// Command-line options. Flags win over the few environment variables read
// (RINGCAST_JWT_SECRET, RINGCAST_MONGO). A missing or bad value stops
// startup with a one-line reason and exit status 2, as ringcast does.

const OPTIONS = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'int', default: 8081, min: 0, max: 65535 },
  parser: { type: 'enum', values: ['json', 'msgpack'], default: 'json' },
  'jwt-secret': { type: 'string', env: 'RINGCAST_JWT_SECRET' },
  mongo: { type: 'string', env: 'RINGCAST_MONGO' },
  'max-payload': { type: 'int', default: 1000000, min: 1 },
  'ping-interval-ms': { type: 'int', default: 25000, min: 1 },
  'ping-timeout-ms': { type: 'int', default: 20000, min: 1 },
  'max-sockets-per-user': { type: 'int', default: 5, min: 1 },
  'rate-limit': { type: 'int', default: 30, min: 1 },
  'rate-burst': { type: 'int', default: 10, min: 1 },
  'confirm-deadline-ms': { type: 'int', default: 30000, min: 1 },
};

const USAGE = `usage: node server.js [options]
  --host HOST                 (127.0.0.1)
  --port PORT                 (8081; 0 picks a free port)
  --parser json|msgpack       (json; one parser for every connection)
  --jwt-secret SECRET         (or RINGCAST_JWT_SECRET; required)
  --mongo URI                 (or RINGCAST_MONGO; none = in-memory only, instant confirms)
  --max-payload BYTES         (1000000)
  --ping-interval-ms MS       (25000)
  --ping-timeout-ms MS        (20000)
  --max-sockets-per-user N    (5)
  --rate-limit N              (30 messages per 60 s per user)
  --rate-burst N              (10)
  --confirm-deadline-ms MS    (30000; MongoDB server selection timeout)`;

class ConfigError extends Error {}

function convert(name, spec, raw) {
  if (spec.type === 'string') {
    if (raw === '') throw new ConfigError(`--${name} must not be empty`);
    return raw;
  }
  if (spec.type === 'enum') {
    if (!spec.values.includes(raw)) throw new ConfigError(`--${name} must be one of ${spec.values.join(', ')}`);
    return raw;
  }
  if (!/^\d+$/.test(raw)) throw new ConfigError(`--${name} must be an integer, not "${raw}"`);
  const n = Number(raw);
  if (n < spec.min || (spec.max !== undefined && n > spec.max)) {
    throw new ConfigError(`--${name} must be between ${spec.min} and ${spec.max ?? 'any'}`);
  }
  return n;
}

function parse(argv, env) {
  const given = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m || !OPTIONS[m[1]]) throw new ConfigError(`unknown option ${arg}`);
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new ConfigError(`--${m[1]} needs a value`);
      value = argv[++i];
    }
    given[m[1]] = value;
  }
  const config = {};
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const raw = given[name] ?? (spec.env ? env[spec.env] : undefined);
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    config[key] = raw === undefined ? spec.default : convert(name, spec, raw);
  }
  if (!config.jwtSecret) throw new ConfigError('--jwt-secret (or RINGCAST_JWT_SECRET) is required');
  if (config.mongo && !/^mongodb(\+srv)?:\/\//.test(config.mongo)) {
    throw new ConfigError('--mongo must be a mongodb:// or mongodb+srv:// URI');
  }
  return config;
}

module.exports = { parse, ConfigError, USAGE };
