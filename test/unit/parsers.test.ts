import { describe, expect, it } from 'vitest';
import { formatDefinition, parseDefinition } from '../../src/host/definitions.js';
import { mdevUuidsInQemuArgs } from '../../src/host/processes.js';
import { parseDomainXml } from '../../src/libvirt/domain-xml.js';
import { virtualFunctionAddresses } from '../../src/simulator/layout.js';

describe('SR-IOV VF addresses (offset/stride from the PF routing id)', () => {
  it('A100 PF 0000:21:00.0 with offset 4, stride 1 (seed 002)', () => {
    const vfs = virtualFunctionAddresses('0000:21:00.0', 4, 1, 20);
    expect(vfs.slice(0, 5)).toEqual(['0000:21:00.4', '0000:21:00.5', '0000:21:00.6', '0000:21:00.7', '0000:21:01.0']);
    expect(vfs[19]).toBe('0000:21:02.7');
  });
  it('crosses into the next bus when the routing id does', () => {
    expect(virtualFunctionAddresses('0000:81:1f.0', 4, 1, 5)).toEqual(['0000:81:1f.4', '0000:81:1f.5', '0000:81:1f.6', '0000:81:1f.7', '0000:82:00.0']);
  });
});

describe('mdevctl definition format', () => {
  it('is byte for byte what mdevctl 1.2 writes', () => {
    expect(formatDefinition({ type: 'nvidia-50', start: 'auto', attrs: [] })).toBe('{\n  "mdev_type": "nvidia-50",\n  "start": "auto",\n  "attrs": []\n}');
    expect(formatDefinition({ type: 'nvidia-50', start: 'manual', attrs: [['foo', 'bar']] })).toBe(
      '{\n  "mdev_type": "nvidia-50",\n  "start": "manual",\n  "attrs": [\n    {\n      "foo": "bar"\n    }\n  ]\n}',
    );
  });
  it('reads definitions with or without a trailing newline and refuses malformed ones', () => {
    expect(parseDefinition('{"mdev_type":"nvidia-700","start":"manual","attrs":[]}\n')).toEqual({ mdev_type: 'nvidia-700', start: 'manual', attrs: [] });
    expect(parseDefinition('{"mdev_type":"nvidia-700","start":"auto"}').attrs).toEqual([]);
    expect(() => parseDefinition('{"mdev_type":"nvidia-700"}')).toThrow();
    expect(() => parseDefinition('{"mdev_type":"nvidia-700","start":"auto","attrs":[{"a":"1","b":"2"}]}')).toThrow(/exactly one key/);
    expect(() => parseDefinition('not json')).toThrow();
  });
});

describe('libvirt domain XML', () => {
  it('finds mdev and PCI hostdevs in a persistent domain (seed 004 style)', () => {
    const xml = `<domain type='kvm'>
  <name>y-k8s-n-1</name>
  <devices>
    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
      <source><address uuid='334855E2-079b-11ee-9fc9-83e0dccb6713'/></source>
      <address type='pci' domain='0x0000' bus='0x09' slot='0x00' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x86' slot='0x00' function='0x0'/></source>
    </hostdev>
  </devices>
</domain>`;
    expect(parseDomainXml(xml)).toEqual({ name: 'y-k8s-n-1', mdevUuids: ['334855e2-079b-11ee-9fc9-83e0dccb6713'], pciAddresses: ['0000:86:00.0'] });
  });
  it('reads the running copy wrapped in <domstatus>', () => {
    const xml = `<domstatus state='running'><domain type='kvm' id='3'><name>vm1</name><devices><hostdev mode='subsystem' type='mdev'><source><address uuid='a02e5c35-5a0b-48fa-a11d-21e9747cf09e'/></source></hostdev></devices></domain></domstatus>`;
    expect(parseDomainXml(xml).mdevUuids).toEqual(['a02e5c35-5a0b-48fa-a11d-21e9747cf09e']);
  });
  it('answers nothing for XML that is not a domain', () => {
    expect(parseDomainXml('<network><name>default</name></network>')).toEqual({ name: null, mdevUuids: [], pciAddresses: [] });
  });
});

describe('qemu command lines', () => {
  it('finds mdevs in classic and JSON -device arguments', () => {
    expect(mdevUuidsInQemuArgs(['qemu-system-x86_64', '-device', 'vfio-pci,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/a02e5c35-5a0b-48fa-a11d-21e9747cf09e,bus=pci.7'])).toEqual(['a02e5c35-5a0b-48fa-a11d-21e9747cf09e']);
    expect(mdevUuidsInQemuArgs(['-device', '{"driver":"vfio-pci","id":"hostdev0","sysfsdev":"/sys/bus/mdev/devices/334855E2-079B-11EE-9FC9-83E0DCCB6713"}'])).toEqual(['334855e2-079b-11ee-9fc9-83e0dccb6713']);
    expect(mdevUuidsInQemuArgs(['-uuid', 'a02e5c35-5a0b-48fa-a11d-21e9747cf09e'])).toEqual([]);
  });
});
