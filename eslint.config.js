// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Each outside library stays in its folder (STYLE.md habit 3). */
const confined = [
  { name: 'simple-git', folder: 'src/source' },
  { name: '@kubernetes/client-node', folder: 'src/kube' },
  { name: 'fastify', folder: 'src/http' },
  { name: '@bugsnag/js', folder: 'src/report' },
  { name: '@slack/webhook', folder: 'src/report' },
];

/**
 * @param {string[]} files
 * @param {(c: { name: string, folder: string }) => boolean} banned
 */
function restrictImports(files, banned) {
  const paths = confined.filter(banned).map(({ name, folder }) => ({ name, message: `only ${folder} may import ${name}` }));
  return { files, rules: { 'no-restricted-imports': ['error', { paths }] } };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // src/: each library only in its own folder; a file's folder config comes last, so it wins.
  restrictImports(['src/**/*.ts'], () => true),
  ...[...new Set(confined.map((c) => c.folder))].map((folder) =>
    restrictImports([`${folder}/**/*.ts`], (c) => c.folder !== folder),
  ),
  restrictImports(['src/app.ts', 'src/main.ts'], (c) => c.name !== 'fastify'),
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "Property[key.name='shell'][value.value=true]", message: 'no shell strings: use argument arrays' },
        { selector: "CallExpression[callee.name='execSync']", message: 'no shell strings: use argument arrays' },
        { selector: "CallExpression[callee.property.name='exec'][callee.object.name='child_process']", message: 'no shell strings' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
