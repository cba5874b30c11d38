/** How long a connection may send nothing (headers, a body, a streamed import) before it is closed. */
export const IDLE_TIMEOUT_MS = 30_000;
