// A test page for the AI SDK transport: the real `useChat` of @ai-sdk/react
// (tests/browser/test_ai_sdk.py). Bundled with esbuild from the package, once
// for production (chat-app.js) and once for development (chat-app-dev.js,
// where <StrictMode> mounts, unmounts and mounts again as in a new React app).
//
// Query: chat=<id> (the chat shown first), strict=1 (<StrictMode>), history=0
// (no history: by default the page keeps each chat's messages in
// sessionStorage as they change and starts useChat from them, as an app
// keeping its history would).
import { useChat } from "@ai-sdk/react";
import type { UIMessage } from "ai";
import { StrictMode, useEffect, useState } from "react";
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";
import { SSEResilienceChatTransport } from "flask-sse-resilience/ai";

declare global {
  interface Window {
    chat: {
      send(text: string, body?: object): Promise<void>;
      /** The page's Stop button: cancel on the server, then stop reading. */
      stop(): Promise<unknown>;
      /** useChat's own stop() alone: a disconnect. */
      disconnect(): Promise<void>;
    };
    app: {
      /** Show another chat in the same component (a route change). */
      open(chatId: string): void;
      /** Mount or unmount the chat component. */
      mount(on: boolean): void;
    };
  }
}

const params = new URLSearchParams(location.search);
const keepHistory = params.get("history") !== "0";
const transport = new SSEResilienceChatTransport({ api: "/generations" });

function history(chatId: string): UIMessage[] {
  if (!keepHistory) return [];
  return JSON.parse(sessionStorage.getItem("history:" + chatId) ?? "[]") as UIMessage[];
}

function textOf(message: UIMessage | undefined): string {
  return message ? message.parts.map((p) => (p.type === "text" ? p.text : "")).join("") : "";
}

function Chat({ chatId }: { chatId: string }) {
  const { messages, sendMessage, stop, status, error } = useChat({
    id: chatId,
    transport,
    resume: true,
    messages: history(chatId),
  });
  useEffect(() => {
    if (keepHistory) sessionStorage.setItem("history:" + chatId, JSON.stringify(messages));
  }, [chatId, messages]);
  window.chat = {
    send: (text, body) => sendMessage({ text }, body ? { body } : undefined),
    stop: () => {
      const cancelled = transport.stop(chatId);
      void stop();
      return cancelled;
    },
    disconnect: stop,
  };
  const answers = messages.filter((m) => m.role === "assistant");
  return (
    <div>
      <p id="chat">{chatId}</p>
      <p id="status">{status}</p>
      <p id="error">{error ? String(error) : ""}</p>
      <p id="messages">{messages.length}</p>
      <p id="roles">{messages.map((m) => m.role).join(",")}</p>
      <p id="answer">{textOf(answers[answers.length - 1])}</p>
    </div>
  );
}

function App() {
  const [chatId, setChatId] = useState(params.get("chat") ?? "chat-1");
  const [mounted, setMounted] = useState(true);
  window.app = {
    open: (id) => flushSync(() => setChatId(id)),
    mount: (on) => flushSync(() => setMounted(on)),
  };
  return mounted ? <Chat chatId={chatId} /> : <p id="status">unmounted</p>;
}

const root = document.getElementById("root");
if (root) createRoot(root).render(params.get("strict") === "1" ? <StrictMode><App /></StrictMode> : <App />);
