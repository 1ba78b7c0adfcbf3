/**
 * Names on NATS for an MSight topic. Core pub/sub uses the topic name itself as the subject, as MSight's
 * `NATSPubSub` does; JetStream's stream, bucket and key names allow fewer characters, so the topic is escaped into
 * them reversibly (every character outside `[A-Za-z0-9-]` becomes `_` and its UTF-8 bytes in hex).
 *
 * @module
 */

const enc = new TextEncoder();

/** Escapes `text` into `[A-Za-z0-9_-]`, one-to-one. */
export function escapeName(text: string): string {
  let out = "";
  for (const ch of text) {
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else for (const b of enc.encode(ch)) out += "_" + b.toString(16).padStart(2, "0");
  }
  return out;
}

/** Undoes {@linkcode escapeName}. */
export function unescapeName(name: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "_") {
      bytes.push(parseInt(name.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(name.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The JetStream stream holding a topic's durable segments. */
export function segmentStreamName(topic: string): string {
  return `MSIGHT_SEG_${escapeName(topic)}`;
}

/** The subject that stream captures (not the topic's pub/sub subject: MSight's nodes never see these). */
export function segmentSubject(topic: string): string {
  return `MSIGHT.SEGMENTS.${escapeName(topic)}`;
}

/** The object store bucket holding a topic's segments too large for one message. */
export function segmentBucketName(topic: string): string {
  return `MSIGHT_SEGOBJ_${escapeName(topic)}`;
}
