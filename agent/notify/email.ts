/** Email on open and close (EMAIL_ADDRESSES), over SMTP with nodemailer. */
import type { Transporter } from "nodemailer";
import type { Grant, Notifier } from "../../core/index.js";
import { describeGrant } from "./describe-grant.js";

export interface EmailOptions {
  readonly to: readonly string[];
  readonly from: string;
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
  readonly hostname: string;
}

export class EmailNotifier implements Notifier {
  private transportPromise: Promise<Transporter> | null = null;

  constructor(private readonly options: EmailOptions) {}

  // nodemailer is loaded on the first mail, not at start: a daemon that never mails never pays
  // for it (about 5 MiB of its resident memory).
  private transport(): Promise<Transporter> {
    this.transportPromise ??= import("nodemailer").then(({ createTransport }) =>
      createTransport({
        host: this.options.host,
        port: this.options.port,
        secure: this.options.secure,
        // Without TLS configured, do not try STARTTLS against a local relay that may not offer it.
        ignoreTLS: !this.options.secure,
        connectionTimeout: 5_000,
        greetingTimeout: 5_000,
        socketTimeout: 10_000,
      }),
    );
    return this.transportPromise;
  }

  private async send(subject: string, grant: Grant): Promise<void> {
    await (await this.transport()).sendMail({
      from: this.options.from,
      to: [...this.options.to],
      subject: `[spaknockd ${this.options.hostname}] ${subject}`,
      text: `${describeGrant(grant)}\n`,
    });
  }

  opened(grant: Grant): Promise<void> {
    return this.send(`opened ${grant.sourceIp} for ${grant.username}`, grant);
  }

  closed(grant: Grant): Promise<void> {
    return this.send(`closed ${grant.sourceIp} for ${grant.username}`, grant);
  }
}
