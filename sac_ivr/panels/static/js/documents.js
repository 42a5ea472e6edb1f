// CPF and CNPJ: the same rules as the server (sac_ivr/customers.py, python-stdnum),
// so the agent learns about a typo before saving.

// Punctuation out, letters in capitals: CNPJs may be alphanumeric (from July 2026).
const digitsOf = (raw) => String(raw || "").replace(/[\s./-]/g, "").toUpperCase();

function cpfCheckDigits(d) {
  let d1 = 0;
  for (let i = 0; i < 9; i++) d1 += (10 - i) * Number(d[i]);
  d1 = (((11 - d1) % 11) + 11) % 11 % 10;
  let d2 = 2 * d1;
  for (let i = 0; i < 9; i++) d2 += (11 - i) * Number(d[i]);
  d2 = (((11 - d2) % 11) + 11) % 11 % 10;
  return `${d1}${d2}`;
}

function cnpjCheckDigits(d) {
  const values = [...d.slice(0, 12)].map((c) => c.charCodeAt(0) - 48);
  const w1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
  let s = 0;
  w1.forEach((w, i) => (s += w * values[i]));
  const d1 = (((11 - s) % 11) + 11) % 11 % 10;
  values.push(d1);
  const w2 = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
  s = 0;
  w2.forEach((w, i) => (s += w * values[i]));
  const d2 = (((11 - s) % 11) + 11) % 11 % 10;
  return `${d1}${d2}`;
}

/**
 * {ok, kind: "CPF"|"CNPJ"|null, digits, message} for what the agent typed.
 * An empty field is ok (nothing to store).
 */
export function checkDocument(raw) {
  const text = String(raw || "").trim();
  if (!text) return { ok: true, kind: null, digits: "", message: "" };
  const digits = digitsOf(text);
  if (text.length > 40 || !digits) {
    return { ok: false, kind: null, digits, message: "CPF tem 11 dígitos e CNPJ 14 caracteres." };
  }
  if (!/^[0-9A-Z]+$/.test(digits)) {
    return { ok: false, kind: null, digits, message: "Use só números (e, no CNPJ, letras)." };
  }
  if (digits.length === 11 && /^\d+$/.test(digits)) {
    const ok = Number(digits) > 0 && cpfCheckDigits(digits) === digits.slice(9);
    return { ok, kind: "CPF", digits, message: ok ? "CPF válido" : "CPF inválido: dígitos verificadores não conferem." };
  }
  if (digits.length === 14 && /^\d\d$/.test(digits.slice(12))) {
    const ok = !digits.startsWith("000000000000") && cnpjCheckDigits(digits) === digits.slice(12);
    return { ok, kind: "CNPJ", digits, message: ok ? "CNPJ válido" : "CNPJ inválido: dígitos verificadores não conferem." };
  }
  return {
    ok: false,
    kind: null,
    digits,
    message: `CPF tem 11 dígitos e CNPJ 14 caracteres; foram digitados ${digits.length}.`,
  };
}

/** 12345678909 -> 123.456.789-09; 11222333000181 -> 11.222.333/0001-81 */
export function formatDocument(raw) {
  const d = digitsOf(raw);
  if (d.length === 11) return `${d.slice(0, 3)}.${d.slice(3, 6)}.${d.slice(6, 9)}-${d.slice(9)}`;
  if (d.length === 14) {
    return `${d.slice(0, 2)}.${d.slice(2, 5)}.${d.slice(5, 8)}/${d.slice(8, 12)}-${d.slice(12)}`;
  }
  return raw || "";
}
