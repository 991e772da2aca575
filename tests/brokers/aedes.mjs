// Aedes for the broker matrix (tests/common/brokers.rs): `node aedes.mjs NODE_MODULES_DIR`.
// It listens on a port the kernel picks, so no other process can take it first, and prints
// `listening on PORT` once it accepts; the tests read the port from that line.
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'

// Aedes is installed outside the repository's tree (.ci/run: npm install --prefix).
const require = createRequire(path.join(process.argv[2], 'noop.js'))
const { Aedes } = await import(require.resolve('aedes'))

const aedes = await Aedes.createBroker()
const server = net.createServer(aedes.handle)
server.listen(0, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`)
})
