#!/usr/bin/env node
// A small MCP client on the official TypeScript SDK, for Warden's integration
// tests: it connects to one streamable HTTP endpoint, lists the tools (every
// page), optionally calls one tool, and prints one JSON object on stdout.
//
// Usage: node client.mjs URL [TOOL [ARGS_JSON]]
//
// Environment (all optional):
//   MCP_CLIENT_HEADERS     JSON object of extra HTTP headers, e.g. {"Warden-Grant":"..."}
//   MCP_CLIENT_CERT        PEM client certificate chain for mTLS
//   MCP_CLIENT_KEY         PEM private key for MCP_CLIENT_CERT
//   MCP_CLIENT_CA          PEM CA bundle that verifies the server
//   MCP_CLIENT_TIMEOUT_MS  per-request timeout (default 30000)
//
// Output: {"protocolVersion", "sessionId", "serverInfo", "tools": [...],
// "call": {...} | "callError": {"code", "message"}} on success; a tool result
// with isError is a success here (it is what the server answered). A JSON-RPC
// error answering tools/call is reported as callError with exit status 0.
// Transport failures (connection, TLS, HTTP status, closed connection,
// timeout) and a failing tools/list print {"error": "...", "httpStatus": N
// (when the server answered with an HTTP error)} and exit 1; bad usage
// exits 2.

import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { Agent, fetch as undiciFetch } from 'undici';

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(status, err) {
  const obj = { error: describe(err) };
  if (err instanceof StreamableHTTPError && err.code > 0) {
    obj.httpStatus = err.code;
  }
  out(obj);
  process.exitCode = status;
}

function parseArgs(argv) {
  const [url, tool, argsJSON] = argv;
  if (!url) {
    throw new Error('usage: node client.mjs URL [TOOL [ARGS_JSON]]');
  }
  const parsed = new URL(url);
  let args = {};
  if (argsJSON !== undefined) {
    args = JSON.parse(argsJSON);
    if (args === null || typeof args !== 'object' || Array.isArray(args)) {
      throw new Error('ARGS_JSON must be a JSON object');
    }
  }
  let headers = {};
  const rawHeaders = process.env.MCP_CLIENT_HEADERS;
  if (rawHeaders) {
    headers = JSON.parse(rawHeaders);
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
      throw new Error('MCP_CLIENT_HEADERS must be a JSON object');
    }
    for (const [k, v] of Object.entries(headers)) {
      if (typeof v !== 'string') {
        throw new Error(`MCP_CLIENT_HEADERS: value of ${k} is not a string`);
      }
    }
  }
  const timeout = Number(process.env.MCP_CLIENT_TIMEOUT_MS || 30000);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new Error('MCP_CLIENT_TIMEOUT_MS must be a positive number');
  }
  return { url: parsed, tool, args, headers, timeout };
}

// tlsFetch returns a fetch that presents a client certificate and trusts the
// given CA, or undefined (the SDK's default fetch) when none is configured.
function tlsFetch() {
  const { MCP_CLIENT_CERT: cert, MCP_CLIENT_KEY: key, MCP_CLIENT_CA: ca } = process.env;
  if (!cert && !key && !ca) {
    return undefined;
  }
  if (Boolean(cert) !== Boolean(key)) {
    throw new Error('MCP_CLIENT_CERT and MCP_CLIENT_KEY must be set together');
  }
  const connect = {};
  if (cert) {
    connect.cert = readFileSync(cert);
    connect.key = readFileSync(key);
  }
  if (ca) {
    connect.ca = readFileSync(ca);
  }
  const dispatcher = new Agent({ connect });
  return (url, init) => undiciFetch(url, { ...init, dispatcher });
}

function isTransportError(err) {
  if (err instanceof McpError) {
    return err.code === ErrorCode.ConnectionClosed || err.code === ErrorCode.RequestTimeout;
  }
  return true;
}

function describe(err) {
  if (err instanceof StreamableHTTPError && err.code > 0) {
    return `${err.name}: HTTP ${err.code}: ${err.message}`;
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}

async function main() {
  let opts;
  let fetchImpl;
  try {
    opts = parseArgs(process.argv.slice(2));
    fetchImpl = tlsFetch();
  } catch (err) {
    fail(2, err);
    return;
  }
  const transport = new StreamableHTTPClientTransport(opts.url, {
    requestInit: { headers: opts.headers },
    fetch: fetchImpl,
  });
  const client = new Client({ name: 'warden-mcptest-ts-client', version: '1.0.0' });
  const reqOpts = { timeout: opts.timeout };
  const result = {};
  try {
    await client.connect(transport, reqOpts);
    result.protocolVersion = transport.protocolVersion;
    result.sessionId = transport.sessionId;
    result.serverInfo = client.getServerVersion();
    const tools = [];
    let cursor;
    for (let page = 0; page < 1000; page++) {
      const res = await client.listTools(cursor ? { cursor } : undefined, reqOpts);
      tools.push(...res.tools);
      cursor = res.nextCursor;
      if (!cursor) {
        break;
      }
    }
    result.tools = tools;
  } catch (err) {
    fail(1, err);
    await client.close().catch(() => {});
    return;
  }
  if (opts.tool) {
    try {
      result.call = await client.callTool({ name: opts.tool, arguments: opts.args }, undefined, reqOpts);
    } catch (err) {
      if (isTransportError(err)) {
        fail(1, err);
        await client.close().catch(() => {});
        return;
      }
      result.callError = { code: err.code, message: err.message };
    }
  }
  out(result);
  await transport.terminateSession().catch(() => {});
  await client.close().catch(() => {});
}

main().catch((err) => fail(1, err));
