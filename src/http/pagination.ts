import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Beyond this, a page is reached through the Link header's cursor, which costs no scan. */
export const MAX_OFFSET = 1_000_000;

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Items per page' }),
  cursor: Type.Optional(
    Type.String({
      maxLength: 100,
      description:
        'Where the page starts: copy it from the `Link: <...>; rel="next"` header of the previous page',
    }),
  ),
  offset: Type.Integer({
    minimum: 0,
    maximum: MAX_OFFSET,
    default: 0,
    description:
      'Items to skip (after the cursor, when both are given). Deep offsets cost a scan of the rows skipped ' +
      'and shift when items are added meanwhile: to walk a whole list, follow the `Link` header instead',
  }),
};

export const PAGE_HEADERS = {
  link: Type.Optional(
    Type.String({ description: 'RFC 8288 link to the next page (`rel="next"`), when there is one' }),
  ),
};

/**
 * Lists are keyset-paginated: a page is fetched with one row more than asked, and when that row exists
 * the answer carries a Link header to the page starting after the last item shown. An `offset` skips
 * items once, so the next page's link has the cursor and no offset.
 */
export function sendPage<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  rows: T[],
  limit: number,
  cursorAfter: (last: T) => string,
): T[] {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  if (rows.length > limit && last !== undefined) {
    const url = new URL(request.url, 'http://placeholder');
    url.searchParams.set('cursor', cursorAfter(last));
    url.searchParams.delete('offset');
    reply.header('link', `<${url.pathname}${url.search}>; rel="next"`);
  }
  return page;
}
