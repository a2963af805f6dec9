// A consumer of every public type, type-checked (tsc --noEmit, strict) against
// the package as installed: its "exports" and the built dist/*.d.ts.
import { useChat } from "@ai-sdk/react";
import {
  backoffDelay,
  DEFAULTS,
  findKey,
  isAfter,
  MultiHub,
  ResilientEventSource,
  streamUrl,
  TabShare,
  type CancelAnswer,
  type Carrier,
  type Member,
  type RecoverInfo,
  type SourceOptions,
  type StartFrom,
  type Status,
  type StreamEvent,
  type TokenSource,
} from "flask-sse-resilience";
import { SSEResilienceChatTransport, tokenText, type ChatRequestBody, type ChatTransportOptions } from "flask-sse-resilience/ai";
import { useResilientSSE, type ResilientSSEState, type UseResilientSSEOptions } from "flask-sse-resilience/react";

const getToken: TokenSource = async () => "token";
const from: StartFrom = "snapshot";
const options: SourceOptions = {
  baseDelayMs: 500,
  maxDelayMs: 15000,
  maxAttempts: 12,
  heartbeatMs: 15000,
  watchdogFactor: 2.5,
  persist: true,
  withCredentials: false,
  token: null,
  getToken,
  from,
  lastEventId: "1-0",
  multiplex: "auto",
  shareAcrossTabs: true,
  random: Math.random,
};

const source = new ResilientEventSource<{ text: string }>(streamUrl("/sse", "abc"), options);
source.onevent = (event: StreamEvent<{ text: string }>) => console.log(event.id, event.type, event.data.text, event.stream);
source.onstatus = (status: Status) => console.log(status);
const cursor: string | null = source.cursor;
const answer: Promise<CancelAnswer> = source.cancel("enough");
const found: Promise<RecoverInfo | null> = ResilientEventSource.findKey("/sse", "chat-1");
const lookedUp: Promise<RecoverInfo | null> = findKey("/sse", "chat-1", { withCredentials: true });
const sharing: "leader" | "follower" | null = source.sharing;
const opened: Promise<ResilientEventSource | null> = ResilientEventSource.openKey("/sse", "chat-1", options);
const delay: number = backoffDelay(2, DEFAULTS.baseDelayMs, DEFAULTS.maxDelayMs);
const after: boolean = isAfter("2-0", cursor);
const carrier: Carrier = new MultiHub("/sse", { ...DEFAULTS }, false);
const member: Member = source;
const share: typeof TabShare = TabShare;
void [answer, found, lookedUp, sharing, opened, delay, after, carrier, member, share];

export function Chat({ chatId }: { chatId: string }) {
  const hookOptions: UseResilientSSEOptions = { key: chatId, prefix: "/sse", getToken };
  const state: ResilientSSEState<{ text: string }> = useResilientSSE<{ text: string }>(null, hookOptions);
  const body: ChatRequestBody = { key: chatId, prompt: "hi", on_conflict: "cancel", trigger: "submit-message" };
  const transportOptions: ChatTransportOptions = { api: "/generations", textOf: tokenText, source: options };
  const transport = new SSEResilienceChatTransport(transportOptions);
  const { messages, sendMessage, stop } = useChat({ id: chatId, transport, resume: true });
  return (
    <div>
      <p>{state.status} {state.data?.text} {state.events.length} {state.cursor} {state.streamId} {body.key}</p>
      {messages.map((m) => <p key={m.id}>{m.parts.map((p) => (p.type === "text" ? p.text : "")).join("")}</p>)}
      <button onClick={() => void sendMessage({ text: "hello" })}>send</button>
      <button onClick={() => void stop()}>disconnect</button>
      <button onClick={() => { const stopped: Promise<CancelAnswer | null> = transport.stop(chatId, "stop button"); void stopped; void stop(); }}>stop</button>
      <button onClick={() => void state.stop("enough")}>stop stream</button>
    </div>
  );
}
