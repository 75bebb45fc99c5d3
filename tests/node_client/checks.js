'use strict';
// HubSpot's official Node client (@hubspot/api-client) against a served sandbox: the checks of
// tests/integration/test_sandbox_official_client.py (the Python client), and the differences
// the Node client found (issue 20, item 17). Run by tests/integration/test_sandbox_node_client.py:
//   SANDBOX_URL=... TIGHT_SANDBOX_URL=... SANDBOX_TOKEN=... node checks.js
// TIGHT_SANDBOX_URL is a second sandbox with a small ten-second limit, for the 429.
// Prints one JSON line, {"results": [{"name", "ok", "error"?}]}, and exits 1 if any failed.

const assert = require('node:assert/strict');
const { Client } = require('@hubspot/api-client');

const url = process.env.SANDBOX_URL;
const tightUrl = process.env.TIGHT_SANDBOX_URL;
const token = process.env.SANDBOX_TOKEN;
const DATED = '/crm/objects/2026-03/companies';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// No retries and no client-side limiter: every answer is the sandbox's own.
const client = (basePath, accessToken = token) =>
  new Client({ accessToken, basePath, numberOfApiCallRetries: 0 });
const hubspot = client(url);
const companies = hubspot.crm.companies;
const properties = hubspot.crm.properties;

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

async function refused(promise, status, category) {
  let caught;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught, `expected a ${status} refusal, got a success`);
  assert.equal(caught.code, status, `status: ${caught.code} ${JSON.stringify(caught.body)}`);
  if (category) {
    assert.equal(caught.body.category, category);
    assert.equal(caught.body.status, 'error');
    assert.equal(typeof caught.body.message, 'string');
    assert.match(caught.body.correlationId, UUID);
  }
  return caught.body;
}

async function raw(method, path, body, base = hubspot) {
  const response = await base.apiRequest({ method, path, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

// -- setup: the properties hubsync's bootstrap creates ------------------------------------

check('property group and properties are created', async () => {
  const group = await properties.groupsApi.create('companies', { name: 'warp', label: 'WARP' });
  assert.equal(group.name, 'warp');
  for (const [name, type, fieldType, unique] of [
    ['warp_ban', 'string', 'text', true],
    ['warp_credit_limit', 'number', 'number', false],
    ['warp_since', 'date', 'date', false],
  ]) {
    const created = await properties.coreApi.create('companies', {
      name, label: name, type, fieldType, groupName: 'warp', hasUniqueValue: unique,
    });
    assert.equal(created.name, name);
    assert.equal(created.hasUniqueValue, unique);
  }
  const all = await properties.coreApi.getAll('companies');
  const names = all.results.map((p) => p.name);
  for (const name of ['warp_ban', 'warp_credit_limit', 'warp_since', 'name']) {
    assert.ok(names.includes(name), name);
  }
});

// -- the Python client's checks -------------------------------------------------------

check('companies round trip', async () => {
  const made = await companies.basicApi.create({
    properties: { name: 'Acme', warp_ban: 'ZT-NC-1', warp_credit_limit: '1500.50' },
    associations: [],
  });
  assert.equal(made.properties.warp_credit_limit, '1500.5');
  const read = await companies.basicApi.getById(made.id, ['warp_ban', 'domain']);
  assert.equal(read.properties.warp_ban, 'ZT-NC-1');
  assert.equal(read.properties.domain, null); // requested and unset: null, as HubSpot answers
  const changed = await companies.basicApi.update(made.id, {
    properties: { warp_since: '2026-01-01' },
  });
  assert.equal(changed.properties.warp_since, '2026-01-01');
  const history = await companies.basicApi.getById(made.id, undefined, ['warp_credit_limit']);
  assert.equal(history.propertiesWithHistory.warp_credit_limit[0].value, '1500.5');
  const byBan = await companies.basicApi.getById('ZT-NC-1', ['name'], undefined, undefined,
    false, 'warp_ban');
  assert.equal(byBan.id, made.id);
});

let upsertedIds = [];
check('batch upsert, batch read with a missing id (207), paging, search', async () => {
  const upserted = await companies.batchApi.upsert({
    inputs: [0, 1, 2, 3, 4].map((n) => ({
      id: `ZT-NC-B${n}`, idProperty: 'warp_ban', properties: { name: `B${n}` },
    })),
  });
  assert.equal(upserted.results.length, 5);
  assert.ok(upserted.results.every((r) => r._new === true || r['new'] === true));
  upsertedIds = upserted.results.map((r) => r.id);
  const read = await companies.batchApi.read({
    inputs: [...upsertedIds, '999999'].map((id) => ({ id })),
    properties: ['name'],
    propertiesWithHistory: [],
  });
  assert.equal(read.numErrors, 1);
  assert.equal(read.errors[0].category, 'OBJECT_NOT_FOUND');
  assert.equal(read.results.length, 5);
  const page = await companies.basicApi.getPage(2, undefined, ['name']);
  assert.equal(page.results.length, 2);
  assert.ok(page.paging.next.link.startsWith(url), page.paging.next.link);
  const next = await companies.basicApi.getPage(2, page.paging.next.after, ['name']);
  assert.notEqual(next.results[0].id, page.results[0].id);
  const found = await companies.searchApi.doSearch({
    filterGroups: [{ filters: [{ propertyName: 'warp_ban', operator: 'EQ', value: 'ZT-NC-B3' }] }],
    properties: ['name', 'warp_ban'],
    limit: 10,
  });
  assert.equal(found.total, 1);
  assert.equal(found.results[0].properties.name, 'B3');
});

check('merge gives the survivor a new id', async () => {
  const merged = await companies.basicApi.merge({
    primaryObjectId: upsertedIds[0], objectIdToMerge: upsertedIds[1],
  });
  assert.ok(!upsertedIds.slice(0, 2).includes(merged.id));
  const old = await companies.basicApi.getById(upsertedIds[0]);
  assert.equal(old.id, merged.id); // old ids resolve to the survivor
});

check('refusals read as HubSpot\'s Error', async () => {
  const inputs = [...Array(10).keys()].map((n) => ({
    properties: { name: `R${n}`, warp_credit_limit: n === 3 ? ' 5' : '5' }, associations: [],
  }));
  const invalid = await refused(companies.batchApi.create({ inputs }), 400, 'VALIDATION_ERROR');
  assert.ok(invalid.message.startsWith('Property values were not valid'), invalid.message);
  const byRecordId = await refused(companies.batchApi.upsert({
    inputs: [{ id: '1', idProperty: 'hs_object_id', properties: { name: 'x' } }],
  }), 400, 'VALIDATION_ERROR');
  assert.ok(byRecordId.message.includes('hs_object_id'));
  await refused(companies.basicApi.getById('424242'), 404, 'OBJECT_NOT_FOUND');
  const empty = await refused(companies.basicApi.update(upsertedIds[2], { properties: {} }),
    400, 'VALIDATION_ERROR');
  assert.ok(empty.message.startsWith('No properties found to update'));
  const anonymous = new Client({ basePath: url, numberOfApiCallRetries: 0 });
  await refused(anonymous.crm.companies.basicApi.getPage(), 401, 'INVALID_AUTHENTICATION');
});

check('dated (2026-03) paths answer as v3 does', async () => {
  const made = await raw('POST', DATED, { properties: { name: 'Dated', warp_ban: 'ZT-NC-D' } });
  assert.equal(made.status, 201);
  const upsert = await raw('POST', `${DATED}/batch/upsert`, {
    inputs: [{ id: 'ZT-NC-D', idProperty: 'warp_ban', properties: { name: 'Dated 2' } }],
  });
  assert.equal(upsert.status, 200);
  assert.equal(upsert.body.results[0].id, made.body.id);
  const props = await raw('GET', '/crm/properties/2026-03/companies');
  assert.ok(props.body.results.some((p) => p.name === 'warp_ban'));
});

// -- issue 20, item 16: what HubSpot refuses --------------------------------------------

check('batch update by hs_object_id is refused', async () => {
  const body = await refused(companies.batchApi.update({
    inputs: [{ id: upsertedIds[2], idProperty: 'hs_object_id', properties: { name: 'x' } }],
  }), 400, 'VALIDATION_ERROR');
  assert.ok(body.message.includes('hs_object_id'));
});

check('wrongly typed inputs are refused', async () => {
  await refused(companies.batchApi.create({
    inputs: [{ properties: { name: 'A' }, associations: 'bad' }],
  }), 400, 'VALIDATION_ERROR');
  await refused(companies.batchApi.archive({ inputs: [{ id: 1001 }] }), 400, 'VALIDATION_ERROR');
  await refused(companies.batchApi.update({
    inputs: [{ id: 1001, properties: { name: 'x' } }],
  }), 400, 'VALIDATION_ERROR');
  await refused(companies.searchApi.doSearch({ limit: '10' }), 400, 'VALIDATION_ERROR');
});

// -- issue 20, item 17: the differences the Node client found ---------------------------

check('a requested property that does not exist is left out', async () => {
  const read = await companies.basicApi.getById(upsertedIds[2], ['name', 'domain', 'nmae']);
  assert.equal(read.properties.name, 'B2');
  assert.equal(read.properties.domain, null);
  assert.ok(!('nmae' in read.properties), JSON.stringify(read.properties));
  const found = await companies.searchApi.doSearch({ properties: ['name', 'nmae'], limit: 1 });
  assert.ok(!('nmae' in found.results[0].properties));
});

check('properties, a batch of properties and a group are archived (204)', async () => {
  await properties.groupsApi.create('companies', { name: 'old', label: 'Old' });
  for (const name of ['old_a', 'old_b', 'old_c']) {
    await properties.coreApi.create('companies', {
      name, label: name, type: 'string', fieldType: 'text', groupName: 'old',
    });
  }
  await properties.coreApi.archive('companies', 'old_a');
  await properties.batchApi.archive('companies', { inputs: [{ name: 'old_b' }, { name: 'old_c' }] });
  const live = (await properties.coreApi.getAll('companies')).results.map((p) => p.name);
  assert.ok(!live.some((name) => name.startsWith('old_')), live.join(','));
  const archived = await properties.coreApi.getByName('companies', 'old_a', true);
  assert.equal(archived.archived, true);
  await properties.groupsApi.archive('companies', 'old');
  await refused(properties.groupsApi.getByName('companies', 'old'), 404, 'OBJECT_NOT_FOUND');
  await refused(properties.coreApi.archive('companies', 'no_such'), 404, 'OBJECT_NOT_FOUND');
});

check('rate-limit headers include the secondly pair', async () => {
  const answer = await raw('GET', '/crm/v3/objects/companies?limit=1');
  assert.equal(answer.status, 200);
  for (const name of ['max', 'remaining', 'interval-milliseconds', 'daily', 'daily-remaining',
    'secondly', 'secondly-remaining']) {
    const value = answer.headers.get(`x-hubspot-ratelimit-${name}`);
    assert.match(String(value), /^\d+$/, name);
  }
  const secondly = Number(answer.headers.get('x-hubspot-ratelimit-secondly'));
  const left = Number(answer.headers.get('x-hubspot-ratelimit-secondly-remaining'));
  assert.ok(left < secondly, `${left} of ${secondly}`);
});

check('a 429 carries HubSpot\'s body with a requestId', async () => {
  const tight = client(tightUrl);
  let answer;
  for (let n = 0; n < 10; n += 1) {
    answer = await raw('GET', '/crm/v3/objects/companies', undefined, tight);
    if (answer.status === 429) break;
  }
  assert.equal(answer.status, 429);
  assert.deepEqual(Object.keys(answer.body).sort(),
    ['correlationId', 'errorType', 'message', 'policyName', 'requestId', 'status']);
  assert.equal(answer.body.errorType, 'RATE_LIMIT');
  assert.equal(answer.body.policyName, 'TEN_SECONDLY_ROLLING');
  assert.match(answer.body.requestId, UUID);
  assert.equal(answer.headers.get('x-hubspot-ratelimit-remaining'), '0');
  await refused(tight.crm.companies.basicApi.getPage(), 429); // the typed API sees it too
});

(async () => {
  const results = [];
  for (const { name, fn } of checks) {
    try {
      await fn();
      results.push({ name, ok: true });
    } catch (error) {
      results.push({ name, ok: false, error: String((error && error.stack) || error) });
    }
  }
  process.stdout.write(`${JSON.stringify({ results })}\n`);
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
})();
