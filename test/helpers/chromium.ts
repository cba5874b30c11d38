import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's Chromium, which the browser tests and bench:dashboard drive (`apt-get install -y chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless Chromium with its own profile in `profileDir`, started with the flags the dashboard issue
 * asks for (no sandbox, GPU, background networking, component updates or sync), at 1280 x 900.
 */
export function launchChromium(
  profileDir: string,
  options: { acceptDownloads?: boolean; timeout?: number } = {},
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
    ...options,
  });
}
