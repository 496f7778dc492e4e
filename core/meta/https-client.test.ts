import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClusterCa } from "../cluster/ca.ts";
import { testNodeTls } from "../net/test-certs.ts";
import { AnswerParser, HttpsClient } from "./https-client.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "./embedded.ts";
import { EtcdClient } from "./etcd-client.ts";
import { startTlsGate, type TlsGate } from "./tls-gate.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

function feed(parser: AnswerParser, text: string, pieceBytes: number) {
  const all = bytes(text);
  let out: ReturnType<AnswerParser["push"]> = null;
  for (let at = 0; at < all.length && out === null; at += pieceBytes) out = parser.push(all.subarray(at, at + pieceBytes));
  return out;
}

describe("AnswerParser", () => {
  test("reads an answer with Content-Length, whole or a byte at a time", () => {
    const text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"xyz\"}";
    for (const piece of [text.length, 1, 7]) expect(feed(new AnswerParser(1 << 20), text, piece)).toEqual({ answer: { status: 200, body: '{"a":"xyz"}' }, keepAlive: true });
  });

  test("reads a chunked answer split anywhere, and honours Connection: close", () => {
    const text = "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nno q\r\n6;x=1\r\nuorum!\r\n0\r\n\r\n";
    for (const piece of [text.length, 1, 5]) expect(feed(new AnswerParser(1 << 20), text, piece)).toEqual({ answer: { status: 503, body: "no quorum!" }, keepAlive: false });
  });

  test("refuses what is not an answer, a body over the limit and bytes after the answer", () => {
    expect(feed(new AnswerParser(1 << 20), "SSH-2.0-OpenSSH\r\n\r\n", 64)).toMatch(/not an HTTP answer/);
    expect(feed(new AnswerParser(10), "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 64)).toMatch(/over 10/);
    expect(feed(new AnswerParser(100), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", 64)).toMatch(/after the answer/);
    expect(feed(new AnswerParser(100), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64)).toMatch(/bad chunk size/);
  });

  test("an answer without length or chunks ends with the connection", () => {
    const p = new AnswerParser(100);
    expect(p.push(bytes("HTTP/1.0 200 OK\r\n\r\nall of it"))).toBeNull();
    expect(p.end()).toEqual({ answer: { status: 200, body: "all of it" }, keepAlive: false });
  });
});

describe("HttpsClient through the metadata gate to antietcd", () => {
  const host = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.9`;
  const ca = createClusterCa("https-client-test");
  const server = testNodeTls(ca, "gate", host);
  const dir = mkdtempSync(join(tmpdir(), "qstora-https-"));
  let store: EmbeddedMeta;
  let gate: TlsGate;
  let backendConnections = 0;
  let relay: ReturnType<typeof Bun.listen> | undefined;
  beforeAll(async () => {
    store = await startEmbeddedMeta({ dir, port: 0, socketPath: join(dir, "s.sock") });
    // A counting relay between the gate and antietcd: one connection per client connection.
    relay = Bun.listen<{ back: Promise<import("bun").Socket<unknown>> }>({
      unix: join(dir, "relay.sock"),
      socket: {
        open(front) {
          backendConnections++;
          front.data = {
            back: Bun.connect({ unix: join(dir, "s.sock"), socket: { data: (_b, chunk) => void front.write(chunk), close: () => void front.end() } }),
          };
        },
        data(front, chunk) {
          void front.data.back.then((b) => b.write(chunk));
        },
        close(front) {
          void front.data.back.then((b) => b.end());
        },
      },
    });
    gate = startTlsGate({ host, port: 0, certPem: server.certPem, keyPem: server.keyPem, caPem: ca.certPem, backend: { unix: join(dir, "relay.sock") } });
  });
  afterAll(async () => {
    gate.stop();
    relay?.stop(true);
    await store.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("fifty metadata requests reuse one connection", async () => {
    const client = new EtcdClient({ endpoints: [gate.url], tls: testNodeTls(ca, "client", "127.0.0.1"), flavor: "antietcd" });
    const before = backendConnections;
    for (let i = 0; i < 25; i++) await client.put(`/qstora/h/k${i}`, `v${i}`);
    for (let i = 0; i < 25; i++) expect((await client.get(`/qstora/h/k${i}`))?.value).toBe(`v${i}`);
    expect(backendConnections - before).toBe(1);
    await client.close();
  });

  test("a request larger than the socket takes at once goes out as it drains; the answer comes whole", async () => {
    const direct = startTlsGate({ host, port: 0, certPem: server.certPem, keyPem: server.keyPem, caPem: ca.certPem, backend: { unix: join(dir, "s.sock") } });
    const client = new EtcdClient({ endpoints: [direct.url], tls: testNodeTls(ca, "client", "127.0.0.1"), flavor: "antietcd" });
    const big = "x".repeat(1_000_000); // near the store's value limit: 1.33 MB of base64 in one request
    await client.put("/qstora/h/big", big);
    expect((await client.get("/qstora/h/big"))?.value).toBe(big);
    await client.close();
    direct.stop();
  });

  test("refuses a server whose certificate is of another cluster, saying nothing was sent", async () => {
    const other = createClusterCa("other");
    const client = new HttpsClient(testNodeTls(other, "client", "127.0.0.1"));
    const err = await client.post(`${gate.url}/v3/kv/range`, "{}", { timeoutMs: 3000, contentType: "application/json", bodyBytesMax: 1024 }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe("ConnectionRefused");
    client.close();
  });

  test("a server that accepts and never completes the handshake: the request fails within its timeout, as never sent", async () => {
    const mute = Bun.listen({ hostname: host, port: 0, socket: { data: () => undefined } });
    const client = new HttpsClient(testNodeTls(ca, "client", "127.0.0.1"));
    const t0 = performance.now();
    const err = await client.post(`https://${host}:${mute.port}/x`, "{}", { timeoutMs: 500, contentType: "application/json", bodyBytesMax: 1024 }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe("ConnectionRefused");
    expect(performance.now() - t0).toBeLessThan(2_000);
    client.close();
    mute.stop(true);
  });

  test("a connection refused is reported as never sent", async () => {
    const client = new HttpsClient(testNodeTls(ca, "client", "127.0.0.1"));
    const err = await client.post(`https://${host}:1/x`, "{}", { timeoutMs: 3000, contentType: "application/json", bodyBytesMax: 1024 }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe("ConnectionRefused");
    client.close();
  });
});
