# @summary Installs ferm and deploys the host firewall netpolc compiled for this host.
#
# netpolc writes one complete ferm ruleset per host, `out/ferm/<host>.conf` (see
# compiler/backends/ferm.py for its format). This class installs ferm, makes
# /etc/ferm/ferm.conf include conf.d/ and nothing else, puts the host's file in
# /etc/ferm/conf.d/ (removing any other file there), and reloads ferm when either changes.
#
# @param source_dir
#   Where the compiled files are: a local folder (`/srv/netpolc/out/ferm`) or a Puppet
#   file server URL (`puppet:///modules/site_firewall/ferm`).
# @param host
#   The host's name in the policy. The file `<host>.conf` is used if it exists, else the
#   file of the short name (the host name up to its first dot). Default: the FQDN fact.
# @param conf_dir
#   ferm's configuration folder.
# @param file_name
#   The name the host's file gets in `<conf_dir>/conf.d/`.
# @param defaults_file
#   The ferm service's settings: fast mode (iptables-restore) is required by the
#   `@preserve` the files use; undef leaves the file alone.
# @param manage_package
#   Install the ferm package.
# @param manage_service
#   Keep the ferm service enabled and running, and reload it when the rules change.
class netpolc_ferm (
  String $source_dir,
  String $host = $facts['networking']['fqdn'],
  String $conf_dir = '/etc/ferm',
  String $file_name = 'netpolc.conf',
  Optional[String] $defaults_file = '/etc/default/ferm',
  Boolean $manage_package = true,
  Boolean $manage_service = true,
) {
  $short = split($host, '[.]')[0]
  $sources = unique(["${source_dir}/${host}.conf", "${source_dir}/${short}.conf"])

  if $manage_package {
    package { 'ferm':
      ensure => installed,
      before => File[$conf_dir],
    }
  }

  file { $conf_dir:
    ensure => directory,
    mode   => '0755',
  }

  file { "${conf_dir}/ferm.conf":
    ensure  => file,
    mode    => '0644',
    content => "# Managed by Puppet (netpolc_ferm): the ruleset is in conf.d/, compiled by netpolc.\n@include 'conf.d/';\n",
  }

  # only netpolc's file: a complete ruleset must not be mixed with leftovers
  file { "${conf_dir}/conf.d":
    ensure  => directory,
    mode    => '0755',
    recurse => true,
    purge   => true,
    force   => true,
  }

  file { "${conf_dir}/conf.d/${file_name}":
    ensure => file,
    mode   => '0644',
    source => $sources,
  }

  if $defaults_file {
    file { $defaults_file:
      ensure  => file,
      mode    => '0644',
      content => "# Managed by Puppet (netpolc_ferm)\nFAST=yes\nCACHE=no\nOPTIONS=\nENABLED=yes\n",
    }
  }

  if $manage_service {
    $settings = $defaults_file ? {
      undef   => [],
      default => [File[$defaults_file]],
    }
    service { 'ferm':
      ensure    => running,
      enable    => true,
      subscribe => [File["${conf_dir}/ferm.conf"], File["${conf_dir}/conf.d/${file_name}"]] + $settings,
    }
  }
}
