/** Expiry presets as the CLI and admin API accept them: `30d`, `90d`, `never`, or an ISO date. */
const PRESET = /^(\d{1,4})d$/;
export const EXPIRY_PRESETS = ['30d', '60d', '90d', '180d', '365d', 'never'] as const;

/**
 * Returns epoch ms, or null for never. Throws with a message meant for the person who
 * typed the value.
 */
export function parseExpiry(value: string, now: number): number | null {
  if (value === 'never') return null;
  const preset = PRESET.exec(value);
  if (preset) {
    const days = Number(preset[1]);
    if (days < 1) throw new Error(`"${value}" must be at least 1d`);
    return now + days * 86_400_000;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const at = Date.parse(value);
    // Date.parse rolls 2027-02-30 over to March 2; a person meant something else.
    const [y, m, d] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
    const check = new Date(Date.UTC(y, m - 1, d));
    if (Number.isNaN(at) || check.getUTCFullYear() !== y || check.getUTCMonth() !== m - 1 || check.getUTCDate() !== d) {
      throw new Error(`"${value}" is not a valid date`);
    }
    if (at <= now) throw new Error(`"${value}" is in the past`);
    return at;
  }
  throw new Error(`"${value}" is not one of ${EXPIRY_PRESETS.join(', ')}, <N>d or an ISO date`);
}
