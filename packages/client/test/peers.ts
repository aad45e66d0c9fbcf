/** Test peers shared by the client's test files. */
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import { TaskerClient } from '../src/index.ts';

/** What the API server offers to listen with (a Fastify instance). */
interface Listener {
  listen(options: { port: number; host: string }): Promise<unknown>;
  server: { address(): unknown };
}

/** Starts `app` on a free loopback port; a client of it with short retry delays. */
export async function listeningClient(app: Listener): Promise<TaskerClient> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return new TaskerClient({
    baseUrl: `http://127.0.0.1:${port}`,
    retries: { baseDelayMs: 1, maxDelayMs: 5 },
  });
}

/**
 * A TCP server that accepts connections and never says a word: a TLS handshake with it never
 * completes, so only the connect timeout can end a request to it.
 */
export async function silentTcp() {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.resume(); // reads the ClientHello, answers nothing
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `https://127.0.0.1:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
