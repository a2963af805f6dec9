// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
import { useCallback, useEffect, useRef, useState } from "react";
import { streamUrl } from "./requests.js";
import { ResilientEventSource } from "./source.js";
function optionsKey(options) {
  return JSON.stringify(options, (_key, value) => typeof value === "function" ? void 0 : value);
}
function useResilientSSE(streamId, options = {}) {
  const prefix = options.prefix ?? "/sse";
  const key = optionsKey(options);
  const latest = useRef(options);
  latest.current = options;
  const [status, setStatus] = useState("connecting");
  const [data, setData] = useState(null);
  const [events, setEvents] = useState([]);
  const [found, setFound] = useState(streamId);
  const [cursor, setCursor] = useState(options.lastEventId ?? null);
  const sourceRef = useRef(null);
  useEffect(() => {
    const requests = latest.current.key;
    if (!streamId && !requests) return void 0;
    let closed = false;
    setStatus("connecting");
    setData(null);
    setEvents([]);
    const given = latest.current;
    const sourceOptions = {
      ...given,
      getToken: given.getToken ? () => latest.current.getToken?.() : null
    };
    const attach = (id) => {
      setFound(id);
      const source = new ResilientEventSource(streamUrl(prefix, id), sourceOptions);
      sourceRef.current = source;
      source.onstatus = setStatus;
      source.onevent = (typed) => {
        setCursor(source.cursor);
        if (typed.type === "reset") return setEvents([]);
        if (typed.type === "snapshot") {
          setEvents([typed]);
          return setData(typed.data);
        }
        setEvents((previous) => [...previous, typed]);
        setData(typed.data);
      };
      setStatus(source.status);
    };
    if (streamId) attach(streamId);
    else if (requests) {
      ResilientEventSource.findKey(prefix, requests, sourceOptions).then(
        (hit) => {
          if (closed) return;
          if (!hit) return setStatus("none");
          attach(hit.streamId);
        },
        () => {
          if (!closed) setStatus("error");
        }
      );
    }
    return () => {
      closed = true;
      sourceRef.current?.close();
      sourceRef.current = null;
    };
  }, [streamId, prefix, key]);
  const stop = useCallback(
    (reason) => sourceRef.current ? sourceRef.current.cancel(reason) : Promise.resolve(null),
    []
  );
  return { status, data, events, stop, streamId: found, cursor };
}
export {
  useResilientSSE
};
