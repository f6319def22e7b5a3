/** Lambda entry: a knock from the relay or from a function URL request. */
import { createAwsClients, createLogger } from "./clients.js";
import { knockEnvironment, readEnvironment } from "./environment.js";
import { createKnockService, type KnockService } from "./knock-service.js";

const clients = createAwsClients();
const log = createLogger("spaknock-knock");
let service: KnockService | undefined;

export const handler = async (event: unknown) => {
  service ??= createKnockService(readEnvironment(knockEnvironment, process.env), clients, log);
  return service.handle(event);
};
