import { describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { deleteTag, headManifest, listTags, pushImage, pushIndex, registryFetch } from '../env/registry-helpers.js';

describe('test ground: registries', () => {
  const reg = ground('registry');

  it('anonymous registry: push, list, head, delete a tag', async () => {
    const target = { host: reg.anonymous, repository: 'ground/anonymous' };

    const pushed = await pushImage({ ...target, tag: 'v1' });

    expect(pushed.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await listTags(target)).toContain('v1');
    expect(await headManifest(target, 'v1')).toBe(pushed.digest);
    await deleteTag(target, 'v1');
    expect(await headManifest(target, 'v1')).toBeUndefined();
  });

  it('basic registry: push with credentials and list; 401 without or with a wrong password', async () => {
    const auth = { username: reg.basic.username, password: reg.basic.password };
    const target = { host: reg.basic.host, repository: 'ground/basic', auth };

    await pushImage({ ...target, tag: 'v1', format: 'docker' });

    expect(await listTags(target)).toEqual(['v1']);
    const anonymous = await registryFetch(reg.basic.host, '/v2/ground/basic/tags/list');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await registryFetch(reg.basic.host, '/v2/ground/basic/tags/list', {}, { ...auth, password: 'wrong' });
    expect(wrong.status).toBe(401);
  });

  it('bearer registry: the token flow works end to end, and a token is required', async () => {
    const auth = { username: reg.bearer.username, password: reg.bearer.password };
    const target = { host: reg.bearer.host, repository: 'ground/bearer', auth };

    const index = await pushIndex({ ...target, tag: 'multi' });
    await pushImage({ ...target, tag: 'single' });

    expect((await listTags(target))?.sort()).toEqual(['multi', 'single']);
    expect(await headManifest(target, 'multi')).toBe(index.digest);
    const anonymous = await registryFetch(reg.bearer.host, '/v2/ground/bearer/tags/list');
    expect(anonymous.status).toBe(401);
    const challenge = anonymous.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain(`realm="${reg.bearer.realm}"`);
    expect(challenge).toContain('scope="repository:ground/bearer:pull"');
    await expect(listTags({ ...target, auth: { ...auth, password: 'wrong' } })).rejects.toThrow('token server answered 401');
  });

  it('bearer registry: an anonymous token grants nothing', async () => {
    const realm = new URL(reg.bearer.realm);
    realm.searchParams.set('service', 'deployer-test-registry');
    realm.searchParams.set('scope', 'repository:ground/bearer:pull');
    const tokenRes = await fetch(realm);
    const { token } = (await tokenRes.json()) as { token: string };

    const res = await fetch(`http://${reg.bearer.host}/v2/ground/bearer/tags/list`, {
      headers: { authorization: `Bearer ${token}` },
    });

    expect(tokenRes.status).toBe(200);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });
});
