// A test page for the AI SDK transport: the real `useChat` of @ai-sdk/react
// (tests/browser/test_ai_sdk.py). Bundled with esbuild from the package.
import { useChat } from "@ai-sdk/react";
import { createRoot } from "react-dom/client";
import { SSEResilienceChatTransport } from "flask-sse-resilience/ai";

declare global {
  interface Window {
    chat: {
      send(text: string, body?: object): Promise<void>;
      stop(): Promise<void>;
    };
  }
}

const chatId = new URLSearchParams(location.search).get("chat") ?? "chat-1";
const transport = new SSEResilienceChatTransport({ api: "/generations" });

function Chat() {
  const { messages, sendMessage, stop, status, error } = useChat({ id: chatId, transport, resume: true });
  window.chat = {
    send: (text, body) => sendMessage({ text }, body ? { body } : undefined),
    stop,
  };
  const answers = messages.filter((m) => m.role === "assistant");
  const last = answers[answers.length - 1];
  const text = last ? last.parts.map((p) => (p.type === "text" ? p.text : "")).join("") : "";
  return (
    <div>
      <p id="status">{status}</p>
      <p id="error">{error ? String(error) : ""}</p>
      <p id="messages">{messages.length}</p>
      <p id="answer">{text}</p>
    </div>
  );
}

const root = document.getElementById("root");
if (root) createRoot(root).render(<Chat />);
