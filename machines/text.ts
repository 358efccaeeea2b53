/** `text` cut to `max` characters (UTF-16 code units), the last one an ellipsis: how a stored error's name, message and stack are kept within their bounds. */
export const cutText = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
