/**
 * Seed 002's compute node (fixtures/a100d-sriov-seed002.json, StackHPC's kayobe role): the UUIDs of its
 * mdevctl definitions, each with its nvidia-mdev@<uuid>.service unit, in the fixture's order.
 */
export const SEED002_UUIDS: readonly string[] = [
  '5c630867-a673-5d75-aa31-a499e6c7cb19',
  'eaa6e018-308e-58e2-b351-aadbcf01f5a8',
  'da3566e4-df16-5aee-962c-bf1d02ac624b',
  'e14355f9-33b9-590e-b65a-876490a15407',
  '72291b01-689b-5b7a-9171-6b3480deabf4',
  '0a47ffd1-392e-5373-8428-707a4e0ce31a',
  'f83310eb-80bc-5062-8edc-79d86a9203ba',
  'ef50aadb-13bc-5a2a-af66-bc6a7080d1d2',
];
