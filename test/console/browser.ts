/**
 * Browser tests of the web console: Debian's Chromium (`/usr/bin/chromium`, installed by
 * .ci/run) driven by playwright-core — no browser is downloaded. If Chromium is missing or
 * cannot start, `launchChromium` throws and the tests fail; they never skip.
 *
 * Also: every request a page makes is recorded (to prove nothing leaves the admin origin),
 * console errors and page errors are collected (a CSP or Trusted Types violation shows up
 * there), and screenshots go to test/console/screenshots/ (ignored by git).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = join(import.meta.dirname, 'screenshots');

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (.ci/run does: apt-get install -y chromium)`);
  // launch() gives every run a fresh temporary user-data directory of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 20_000,
  });
}

export interface PageRecord {
  /** Every URL the page requested (navigations, scripts, fetches, icons…). */
  requests: string[];
  /** Console messages of type error, and uncaught page errors. */
  errors: string[];
}

export function record(page: Page, into: PageRecord = { requests: [], errors: [] }): PageRecord {
  page.on('request', (request) => into.requests.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') into.errors.push(message.text());
  });
  page.on('pageerror', (error) => into.errors.push(`pageerror: ${error.message}`));
  return into;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
