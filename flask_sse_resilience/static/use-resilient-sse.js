// React hook over ResilientEventSource, with the seed's return shape.
// React is not a dependency of flask-sse-resilience: copy this file into your
// app (or import it from /sse/static/use-resilient-sse.js with an import map
// that provides "react").
//
//   const { status, data, events } = useResilientSSE(streamId);
//
// status: "connecting" | "connected" | "reconnecting" | "completed" | "failed" | "error"
// data:   the data of the latest event (the result, once terminal)
// events: every event so far ({id, type, data}), reset on a "reset" event
import { useEffect, useState } from "react";
import { ResilientEventSource } from "./sse-resilience.mjs";

// Options are compared by value (functions aside): a new token, say,
// reconnects; a new object with the same values does not.
function optionsKey(options) {
  return JSON.stringify(options, (key, value) => (typeof value === "function" ? undefined : value));
}

export function useResilientSSE(streamId, options = {}) {
  const prefix = options.prefix || "/sse";
  const key = optionsKey(options);
  const [status, setStatus] = useState("connecting");
  const [data, setData] = useState(null);
  const [events, setEvents] = useState([]);

  useEffect(() => {
    if (!streamId) return undefined;
    setStatus("connecting");
    setData(null);
    setEvents([]);
    const source = new ResilientEventSource(`${prefix}/streams/${streamId}`, options);
    source.onstatus = setStatus;
    source.onevent = (event) => {
      if (event.type === "reset") {
        setEvents([]);
        return;
      }
      setEvents((previous) => [...previous, event]);
      setData(event.data);
    };
    return () => source.close();
    // `key` stands for `options`: the effect reruns when their values change.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [streamId, prefix, key]);

  return { status, data, events };
}
