/** Lambda entry: every minute, revoke every spaknock rule past its expiry (the backstop). */
import { createLogger } from "./clients.js";
import { createCloseClients } from "./close-clients.js";
import { readEnvironment, revokeEnvironment } from "./environment.js";
import { createRevokeService, type RevokeService } from "./revoke-service.js";

const clients = createCloseClients();
const log = createLogger("spaknock-sweep");
let service: RevokeService | undefined;

export const handler = async () => {
  service ??= createRevokeService(readEnvironment(revokeEnvironment, process.env), clients, log);
  return service.sweep();
};
