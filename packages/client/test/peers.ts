/** Test peers shared by the client's test files. */
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';

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
