// The one DOM helper every editor module uses: an element with a class, attributes and text.

export function el(tag, cls, attrs = {}, text = null) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}
