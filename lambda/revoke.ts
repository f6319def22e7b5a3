/** Lambda entry: revoke the rules of one grant, invoked by its one-time schedule. */
import { createLogger } from "./clients.js";
import { createCloseClients } from "./close-clients.js";
import { readEnvironment, revokeEnvironment } from "./environment.js";
import { createRevokeService, type RevokeService } from "./revoke-service.js";

const clients = createCloseClients();
const log = createLogger("spaknock-revoke");
let service: RevokeService | undefined;

export const handler = async (event: unknown) => {
  service ??= createRevokeService(readEnvironment(revokeEnvironment, process.env), clients, log);
  return service.revoke(event);
};
