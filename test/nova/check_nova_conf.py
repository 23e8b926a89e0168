#!/usr/bin/python3
"""Loads nova.conf files with nova's own code (Debian python3-nova) and prints what nova makes of them.

Usage: check_nova_conf.py CASES.json  ->  prints a JSON list, one result per case.

Each case: {"file": PATH,
            "devices": [{"address", "vendor_id", "product_id", "parent_addr"}],   # optional, for [pci] device_spec
            "flavors": ["T4:1,T4_AUDIO:1"],                                       # optional, pci_passthrough:alias values
            "options": [["libvirt", "virt_type"], ...]}                          # optional, any other option to read

For each file, in a forked child (nova is imported once):
  1. nova.conf.CONF(args=[], default_config_files=[file])            -- oslo.config parses the file
  2. LibvirtDriver._get_supported_vgpu_types                         -- what nova-compute's libvirt driver makes
     of [devices] and the type groups, called as the driver's constructor calls it (before init_host registers
     the dynamic groups), so a single enabled type is handled as nova really handles it
  3. nova.conf.devices.register_dynamic_opts(CONF), then CONF['mdev_<type>'] for every enabled type
  4. nova.pci.whitelist.Whitelist(CONF.pci.device_spec) and device_assignable() for the given devices
  5. nova.pci.request._get_alias_from_config() and _translate_alias_to_requests() for the given flavors
Any exception is reported with its class and message, never swallowed.
"""
import collections
import json
import os
import sys
import traceback
import types

import nova.conf
import nova.objects
from nova.pci import request as pci_request
from nova.pci import whitelist as pci_whitelist
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF
nova.objects.register_all()


def err(e):
    return '%s: %s' % (type(e).__name__, e)


def check(case):
    out = {'file': case['file'], 'nova_version': nova_version()}
    try:
        CONF(args=[], default_config_files=[case['file']], project='nova')
    except Exception as e:  # oslo ConfigFileParseError and friends
        out['parse_error'] = err(e)
        return out
    out['enabled_mdev_types'] = list(CONF.devices.enabled_mdev_types)

    fake = types.SimpleNamespace(
        pgpu_type_mapping=collections.defaultdict(str),
        mdev_class_mapping=collections.defaultdict(lambda: 'VGPU'),
        mdev_classes=set(),
    )
    try:
        supported = libvirt_driver.LibvirtDriver._get_supported_vgpu_types(fake)
        out['driver'] = {
            'supported_types': list(supported),
            'pgpu_type_mapping': dict(fake.pgpu_type_mapping),
            'mdev_class_mapping': dict(fake.mdev_class_mapping),
            'mdev_classes': sorted(fake.mdev_classes),
        }
    except Exception as e:
        out['driver_error'] = err(e)

    nova.conf.devices.register_dynamic_opts(CONF)
    groups = {}
    for t in CONF.devices.enabled_mdev_types:
        g = {}
        try:
            g['device_addresses'] = list(CONF['mdev_%s' % t].device_addresses)
        except Exception as e:
            g['device_addresses_error'] = err(e)
        try:
            g['mdev_class'] = CONF['mdev_%s' % t].mdev_class
        except Exception as e:
            g['mdev_class_error'] = err(e)
        groups[t] = g
    out['groups'] = groups

    try:
        specs = list(CONF.pci.device_spec)
        out['device_spec'] = specs
        wl = pci_whitelist.Whitelist(specs)
        out['whitelist_specs'] = len(wl.specs)
        out['assignable'] = {d['address']: wl.device_assignable(d) for d in case.get('devices', [])}
    except Exception as e:
        out['whitelist_error'] = err(e)
    try:
        aliases = pci_request._get_alias_from_config()
        out['aliases'] = {name: {'numa_policy': v[0], 'specs': v[1]} for name, v in aliases.items()}
    except Exception as e:
        out['alias_error'] = err(e)
    flavors = {}
    for spec in case.get('flavors', []):
        try:
            reqs = pci_request._translate_alias_to_requests(spec)
            flavors[spec] = [{'alias_name': r.alias_name, 'count': r.count, 'spec': r.spec} for r in reqs]
        except Exception as e:
            flavors[spec] = {'error': err(e)}
    out['flavors'] = flavors
    options = {}
    for group, name in case.get('options', []):
        try:
            value = CONF[group][name] if group != 'DEFAULT' else CONF[name]
            options['%s.%s' % (group, name)] = value if isinstance(value, (str, int, float, bool, type(None))) else list(value)
        except Exception as e:
            options['%s.%s' % (group, name)] = {'error': err(e)}
    out['options'] = options
    return out


def nova_version():
    try:
        from nova import version
        return version.version_string()
    except Exception:
        return None


def run_forked(case):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            data = json.dumps(check(case), default=str)
        except Exception:
            data = json.dumps({'file': case['file'], 'checker_error': traceback.format_exc()})
        with os.fdopen(w, 'w') as f:
            f.write(data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(json.dumps([run_forked(c) for c in cases]))


if __name__ == '__main__':
    main()
