// A test page for the React hook under real React 19 in Chromium
// (tests/browser/test_react.py). Bundled with esbuild from the package itself,
// for production (react-app.js) and development (react-app-dev.js, where
// ?strict=1 mounts it under <StrictMode>, which mounts, unmounts and mounts
// again).
import { createRoot } from "react-dom/client";
import { StrictMode, useState } from "react";
import { flushSync } from "react-dom";
import { useResilientSSE, type UseResilientSSEOptions } from "flask-sse-resilience/react";

interface Props {
  streamId: string | null;
  options: UseResilientSSEOptions;
}

declare global {
  interface Window {
    hook: {
      set(props: Props | null): void;
      stop(reason?: string): Promise<unknown>;
      statuses: string[];
    };
  }
}

const statuses: string[] = [];
let stopCurrent: (reason?: string) => Promise<unknown> = async () => null;

function Follow({ streamId, options }: Props) {
  const { status, data, events, stop, cursor } = useResilientSSE<{ text?: string }>(streamId, options);
  stopCurrent = stop;
  if (statuses[statuses.length - 1] !== status) statuses.push(status);
  const tokens = events.filter((e) => e.type === "token" || e.type === "snapshot");
  const text = tokens.map((e) => e.data?.text ?? "").join("");
  return (
    <div>
      <p id="status">{status}</p>
      <p id="text">{text}</p>
      <p id="count">{tokens.length}</p>
      <p id="cursor">{cursor ?? ""}</p>
      <pre id="data">{JSON.stringify(data)}</pre>
    </div>
  );
}

function App() {
  const [props, setProps] = useState<Props | null>(null);
  window.hook.set = (next) => flushSync(() => setProps(next));
  return props ? <Follow {...props} /> : <p id="status">unmounted</p>;
}

window.hook = { set: () => undefined, stop: (reason) => stopCurrent(reason), statuses };
const root = document.getElementById("root");
const strict = new URLSearchParams(location.search).get("strict") === "1";
if (root) createRoot(root).render(strict ? <StrictMode><App /></StrictMode> : <App />);
